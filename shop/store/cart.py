"""The cart: one per user, one line per product, quantities checked against stock and a limit.

The stock check here is advice for the shopper; the guarantee is taken at checkout, where
stock is decremented atomically. Every change locks the user's cart row first, so two tabs
of one shopper cannot interleave their read-check-write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import BindParameter, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from shop.database import transaction
from shop.extensions import db
from shop.models import User
from shop.store.lifecycle import OrderNotFound
from shop.store.models import Cart, CartItem, Order, OrderItem, OrderStatus, PaymentStatus, Product

log = logging.getLogger(__name__)

MAX_QUANTITY = 10  # of one product in one order


class CartError(Exception):
    """A change the cart refuses; the message is for the shopper."""


@dataclass(frozen=True)
class Line:
    product: Product
    quantity: int

    @property
    def line_total_cents(self) -> int:
        return self.product.price_cents * self.quantity


def _locked_cart_id(user_id: int) -> int:
    """The user's cart (created on first use), locked until the transaction ends.

    The user's row is share-locked first: a concurrent deletion (shop.mirror tombstones the row,
    then deletes the cart) either waits for this change and then deletes the cart, or has
    committed and this change is refused. A tombstone never gets a cart back.
    """
    live = db.session.scalar(
        select(User.id).where(User.id == user_id, User.deleted_at.is_(None)).with_for_update(read=True)
    )
    if live is None:
        raise CartError("This account was deleted.")
    db.session.execute(insert(Cart).values(user_id=user_id).on_conflict_do_nothing(index_elements=[Cart.user_id]))
    # The row exists: inserted just now, or already there (the conflict).
    return db.session.execute(select(Cart.id).where(Cart.user_id == user_id).with_for_update()).scalar_one()


def count_statement(user_id: int | BindParameter[int]):
    """Items in the user's cart: carts by its unique user_id, then the lines by (cart_id, product_id)."""
    return (
        select(func.coalesce(func.sum(CartItem.quantity), 0))
        .join(Cart, Cart.id == CartItem.cart_id)
        .where(Cart.user_id == user_id)
    )


def count(user_id: int) -> int:
    """Items in the cart (the header's number): one indexed query."""
    return db.session.scalar(count_statement(user_id))


def lines(user_id: int) -> list[Line]:
    """The cart's lines with their products, in the order they were added."""
    rows = db.session.execute(
        select(Product, CartItem.quantity)
        .join(CartItem, CartItem.product_id == Product.id)
        .join(Cart, Cart.id == CartItem.cart_id)
        .where(Cart.user_id == user_id)
        .order_by(CartItem.id)
    ).all()
    return [Line(product, quantity) for product, quantity in rows]


def totals(cart_lines: list[Line]) -> dict[str, int]:
    """Total per currency (a demo shop has one; the checkout refuses a mix)."""
    result: dict[str, int] = {}
    for line in cart_lines:
        result[line.product.currency] = result.get(line.product.currency, 0) + line.line_total_cents
    return result


def _check(product: Product | None, quantity: int, *, already: int = 0) -> Product:
    if product is None or not product.active:
        raise CartError("This product is no longer available.")
    if quantity < 1:
        raise CartError("Choose a quantity of at least 1.")
    if product.stock <= 0:
        raise CartError(f"{product.name} is out of stock.")
    if quantity > MAX_QUANTITY:
        more = f" (you already have {already} in your cart)" if already else ""
        raise CartError(f"You can order at most {MAX_QUANTITY} of {product.name} at a time{more}.")
    if quantity > product.stock:
        more = f"; you already have {already} in your cart" if already else ""
        raise CartError(f"Only {product.stock} of {product.name} left in stock{more}.")
    return product


def _product(product_id: int | None = None, slug: str | None = None) -> Product | None:
    if slug is not None:
        return db.session.scalar(select(Product).where(Product.slug == slug))
    return db.session.get(Product, product_id) if product_id is not None else None


def _current_quantity(cart_id: int, product_id: int) -> int:
    return (
        db.session.scalar(
            select(CartItem.quantity).where(CartItem.cart_id == cart_id, CartItem.product_id == product_id)
        )
        or 0
    )


def add(user_id: int, *, quantity: int, product_id: int | None = None, slug: str | None = None) -> Line:
    """Add `quantity` of a product (by id or slug); the line's new total must fit stock and the limit."""
    with transaction():
        product = _product(product_id, slug)
        if product is None or not product.active:
            raise CartError("This product is no longer available.")
        if quantity < 1:
            raise CartError("Choose a quantity of at least 1.")
        cart_id = _locked_cart_id(user_id)
        already = _current_quantity(cart_id, product.id)
        _check(product, already + quantity, already=already)
        statement = insert(CartItem).values(cart_id=cart_id, product_id=product.id, quantity=quantity)
        statement = statement.on_conflict_do_update(
            constraint="uq_cart_items_cart_product",
            set_={"quantity": CartItem.__table__.c.quantity + statement.excluded.quantity},
        )
        db.session.execute(statement)
    return Line(product, already + quantity)


def set_quantity(user_id: int, product_id: int, quantity: int) -> Line | None:
    """Set a line's quantity; 0 removes it. Only ever the user's own cart."""
    if quantity == 0:
        remove(user_id, product_id)
        return None
    with transaction():
        if quantity < 0:
            raise CartError("Choose a quantity of 0 (to remove) or more.")
        cart_id = _locked_cart_id(user_id)
        if not _current_quantity(cart_id, product_id):
            raise CartError("That item is not in your cart.")
        product = _check(_product(product_id), quantity)
        db.session.execute(
            update(CartItem)
            .where(CartItem.cart_id == cart_id, CartItem.product_id == product_id)
            .values(quantity=quantity)
            .execution_options(synchronize_session=False)
        )
    return Line(product, quantity)


def remove(user_id: int, product_id: int) -> bool:
    """Remove a line from the user's own cart; whether there was one."""
    with transaction():
        cart_id = db.session.scalar(select(Cart.id).where(Cart.user_id == user_id))
        if cart_id is None:
            return False
        removed = db.session.execute(
            delete(CartItem)
            .where(CartItem.cart_id == cart_id, CartItem.product_id == product_id)
            .returning(CartItem.product_id)
        ).first()
    return removed is not None


# --- a cancelled order's items, back in the cart ------------------------------------------------------------


@dataclass(frozen=True)
class PutBack:
    lines: list[Line]  # the cart's lines of the order's products, as they now stand
    missing: list[str]  # what could not be put back (or not all of it), one phrase each


def put_back(user_id: int, order_id: int) -> PutBack:
    """After a failed or abandoned payment (the order cancelled, its stock given back): the order's items
    back in the user's cart, as far as stock and the per-line limit allow. A line already in the cart
    keeps the larger quantity, so a second press (or two at once: the cart row's lock serialises them)
    puts nothing in twice. Raises OrderNotFound for anyone else's order, CartError for an order that
    is not cancelled (a paid one keeps its items)."""
    with transaction():
        cart_id = _locked_cart_id(user_id)
        order = db.session.scalar(select(Order).where(Order.id == order_id, Order.user_id == user_id))
        if order is None:
            raise OrderNotFound(order_id)
        if order.status != OrderStatus.CANCELLED:
            raise CartError(_not_cancelled(order))
        items = db.session.execute(
            select(OrderItem.product_id, OrderItem.product_name, OrderItem.quantity)
            .where(OrderItem.order_id == order_id)
            .order_by(OrderItem.id)
        ).all()
        put: list[Line] = []
        missing: list[str] = []
        for product_id, name, quantity in items:
            product = _product(product_id)
            if product is None or not product.active:
                missing.append(f"{name} (no longer sold)")
                continue
            if product.stock <= 0:
                missing.append(f"{product.name} (sold out)")
                continue
            wanted = min(quantity, MAX_QUANTITY, product.stock)
            already = _current_quantity(cart_id, product.id)
            if wanted > already:
                statement = insert(CartItem).values(cart_id=cart_id, product_id=product.id, quantity=wanted)
                db.session.execute(
                    statement.on_conflict_do_update(
                        constraint="uq_cart_items_cart_product", set_={"quantity": statement.excluded.quantity}
                    )
                )
            if wanted < quantity:
                missing.append(f"{product.name} ({wanted} of {quantity}: only {product.stock} left)")
            put.append(Line(product, max(wanted, already)))
    log.info("order %s: %d line(s) put back in the cart of user %s", order_id, len(put), user_id)
    return PutBack(put, missing)


def _not_cancelled(order: Order) -> str:
    if order.payment_status == PaymentStatus.PENDING:
        return (
            f"Order #{order.id} is still waiting for its payment; pay it, or cancel it to put its items back "
            "in your cart."
        )
    state = "paid" if order.status == OrderStatus.PLACED else order.status
    return (
        f"Order #{order.id} is {state}, so its items stay with it; only a cancelled order's items can be put "
        "back in your cart."
    )
