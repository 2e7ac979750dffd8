"""Checkout: the cart becomes an order, and stock is taken so that nothing is ever oversold.

In one transaction:

1. the user's cart row is locked, so a double submit of one form waits for the first, then
   finds its order by the idempotency key (unique per user) and places nothing;
2. each line takes its stock with one conditional statement,
   `UPDATE products SET stock = stock - q WHERE id = … AND active AND stock >= q RETURNING …`,
   in product-id order (two checkouts lock shared products in the same order: no deadlock).
   PostgreSQL re-checks `stock >= q` on the newest row version after waiting for a rival's
   lock, so of two shoppers racing for the last unit exactly one gets it;
3. the order and its lines, with the name and unit price each product had at that moment, are
   inserted and the cart is emptied.

If any line is short, everything is rolled back and the shopper is told which items.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from shop.database import transaction
from shop.extensions import db
from shop.mail import outbox
from shop.models import User
from shop.store import orders, shipping, stock_alerts
from shop.store.addresses import ShippingAddress
from shop.store.models import Cart, CartItem, Order, OrderItem, OrderStatus, PaymentStatus, Product
from shop.store.money import format_money

log = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}\Z")  # \Z: $ would also match before a final newline
OUT_OF_DATE = "The checkout form is out of date. Reload the page and place the order again."
MAX_ORDER_TOTAL_CENTS = 2**31 - 1  # orders.total_cents is INTEGER
# One shopper's hold on stock while unpaid (docs/payments.md, "Bounds"): a new checkout first expires
# their earlier open sessions (shop.payments.checkout), so what is left unpaid is mostly orders whose
# asynchronous payment (a bank debit) is on its way; these caps bound what one account can take off
# the shelf without paying, whatever it does.
MAX_UNPAID_ORDERS = 3
MAX_HELD_PER_PRODUCT = 10  # units of one product in one shopper's unpaid orders (a cart line's own maximum)
TOTAL_TOO_LARGE = "One order can total at most {}; split your cart into smaller orders."


class CheckoutError(Exception):
    """The order cannot be placed; the message is for the shopper."""


class EmptyCart(CheckoutError):
    pass


class OutOfStock(CheckoutError):
    def __init__(self, shortages: list[str]):
        self.shortages = shortages
        super().__init__("Not enough stock for: " + "; ".join(shortages) + ". Your cart was kept; adjust it and retry.")


class CartChanged(CheckoutError):
    pass


class HoldLimit(CheckoutError):
    """The shopper's unpaid orders already hold as much as one shopper may."""


@dataclass(frozen=True)
class Placed:
    order: Order
    created: bool  # False: this key already had an order (a double submit)


def new_idempotency_key() -> str:
    return secrets.token_urlsafe(24)


def _existing(user_id: int, key: str) -> Order | None:
    return db.session.scalar(select(Order).where(Order.user_id == user_id, Order.idempotency_key == key))


def _shortages(cart_id: int) -> list[str]:
    """What is short, read after the rollback (for the message only)."""
    rows = db.session.execute(
        select(Product.name, Product.stock, Product.active, CartItem.quantity)
        .join(CartItem, CartItem.product_id == Product.id)
        .where(CartItem.cart_id == cart_id)
        .order_by(Product.name)
    ).all()
    shortages = []
    for name, stock, active, quantity in rows:
        if not active:
            shortages.append(f"{name} is no longer available")
        elif stock < quantity:
            shortages.append(f"{name} (you want {quantity}, {stock} left)" if stock else f"{name} (sold out)")
    return shortages or ["an item that sold out while you were checking out"]


def _check_holds(user_id: int, lines: Sequence[Row[tuple[int, int]]]) -> None:
    """HoldLimit unless the shopper's unpaid orders, with this one, stay within the caps."""
    unpaid = (
        Order.user_id == user_id,
        Order.status == OrderStatus.PLACED,
        Order.payment_status == PaymentStatus.PENDING,
    )
    count = db.session.scalar(select(func.count()).select_from(Order).where(*unpaid)) or 0
    if count >= MAX_UNPAID_ORDERS:
        raise HoldLimit(
            f"You have {count} unpaid orders; pay or cancel one of them (under Orders) before placing another."
        )
    held = orders.held_by_unpaid(user_id)
    for product_id, quantity in lines:
        if held.get(product_id, 0) + quantity > MAX_HELD_PER_PRODUCT:
            name = db.session.scalar(select(Product.name).where(Product.id == product_id))
            raise HoldLimit(
                f"Your unpaid orders already hold {held[product_id]} of {name}, and one shopper can hold at most "
                f"{MAX_HELD_PER_PRODUCT} until paid; pay or cancel an earlier order, or lower the quantity."
            )


def _shipping_columns(address: ShippingAddress | None) -> dict[str, str | None]:
    if address is None:
        return {}
    return {
        "ship_name": address.name,
        "ship_line1": address.line1,
        "ship_line2": address.line2,
        "ship_postal_code": address.postal_code,
        "ship_city": address.city,
        "ship_country": address.country,
    }


def place_order(
    user_id: int,
    idempotency_key: str,
    *,
    expected_total_cents: int | None = None,
    address: ShippingAddress | None = None,
    shipping_rate_id: int | None = None,
) -> Placed:
    """Turn the user's cart into an order that holds its stock, with a copy of `address` and of the
    shipping rate the shopper chose (its name and its price for this order); commits. The order's
    total_cents is its lines' sum plus that shipping price: what the shopper pays before discounts and
    tax (Stripe's `amount_subtotal` is the lines' sum alone, and its `shipping_cost` the rate's price).
    Raises CheckoutError (nothing written). Payment starts afterwards (shop.payments.checkout)."""
    if not KEY_PATTERN.match(idempotency_key or ""):
        raise CheckoutError(OUT_OF_DATE)
    try:
        with transaction():
            existing = _existing(user_id, idempotency_key)
            if existing is not None:
                return Placed(existing, created=False)
            cart_id = db.session.scalar(select(Cart.id).where(Cart.user_id == user_id).with_for_update())
            # A first submit of this form may have committed while we waited for the cart's lock.
            existing = _existing(user_id, idempotency_key)
            if existing is not None:
                return Placed(existing, created=False)
            if cart_id is None:
                raise EmptyCart("Your cart is empty.")
            lines = db.session.execute(
                select(CartItem.product_id, CartItem.quantity)
                .where(CartItem.cart_id == cart_id)
                .order_by(CartItem.product_id)
            ).all()
            if not lines:
                raise EmptyCart("Your cart is empty.")
            # The shopper as the row is now, not as the signed-in snapshot remembers it.
            owner = db.session.execute(select(User.email, User.deleted_at).where(User.id == user_id)).first()
            if owner is None or owner.deleted_at is not None:
                raise CheckoutError("This account has been deleted, so no order can be placed.")
            email = owner.email
            _check_holds(user_id, lines)  # the cart row's lock serialises this shopper's checkouts
            taken = []
            for product_id, quantity in lines:
                row = db.session.execute(
                    update(Product)
                    .where(Product.id == product_id, Product.active.is_(True), Product.stock >= quantity)
                    .values(stock=Product.stock - quantity)
                    .returning(Product.name, Product.price_cents, Product.currency)
                    .execution_options(synchronize_session=False)
                ).first()
                if row is None:
                    db.session.rollback()  # gives back what earlier lines took
                    raise OutOfStock(_shortages(cart_id))
                taken.append((product_id, quantity, row))
            crossed = stock_alerts.note_crossings(lines)  # staff's e-mail for a fall through a low-stock threshold
            currencies = {row.currency for _, _, row in taken}
            if len(currencies) > 1:
                raise CheckoutError("Your cart mixes currencies; order the items of each currency separately.")
            currency = currencies.pop()
            lines_total = sum(row.price_cents * quantity for _, quantity, row in taken)
            if expected_total_cents is not None and lines_total != expected_total_cents:
                raise CartChanged("Your cart or its prices changed since you opened the checkout. Check the new total.")
            try:  # read again here: a rate deactivated since the page was drawn (or a forged id) is refused
                rate = shipping.choose(shipping_rate_id, currency, lines_total)
            except shipping.ShippingError as exc:
                raise CheckoutError(str(exc)) from exc
            shipping_cents = rate.price_cents if rate else 0
            total = lines_total + shipping_cents
            if total > MAX_ORDER_TOTAL_CENTS:
                raise CheckoutError(TOTAL_TOO_LARGE.format(format_money(MAX_ORDER_TOTAL_CENTS, currency)))
            order = Order(
                user_id=user_id,
                email=email,
                total_cents=total,
                currency=currency,
                idempotency_key=idempotency_key,
                shipping_rate_id=rate.rate_id if rate else None,
                shipping_rate_name=rate.name if rate else None,
                shipping_cents=shipping_cents,
                **_shipping_columns(address),
                items=[
                    OrderItem(
                        product_id=product_id, product_name=row.name, unit_price_cents=row.price_cents, quantity=q
                    )
                    for product_id, q, row in taken
                ],
            )
            db.session.add(order)
            db.session.flush()
            order_id = order.id
            db.session.execute(delete(CartItem).where(CartItem.cart_id == cart_id))
    except IntegrityError as exc:  # transaction() rolled back
        if "uq_orders_user_idempotency_key" not in str(exc.orig):
            raise
        existing = _existing(user_id, idempotency_key)  # a concurrent submit without a cart row won
        db.session.commit()
        if existing is None:
            raise
        return Placed(existing, created=False)
    if crossed:
        outbox.kick()  # the low-stock e-mails, now that they are committed
    log.info("order %s placed by user %s: %d line(s), %d cents", order_id, user_id, len(taken), total)
    return Placed(order, created=True)
