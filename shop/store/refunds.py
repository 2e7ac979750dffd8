"""Refunding part of an order: chosen lines (quantities) or an amount, decided before Stripe is asked.

What a line is worth when refunded is its share of what was charged, not its list price: the lines
together were charged `charged_total - charged_shipping` (the subtotal, less the discount, plus the tax
when it was added on top; with tax-inclusive prices the tax is inside the subtotal already). That
pool is split across the lines in proportion to their amounts (`line_shares`), so the discount and
the tax are pro-rated by line amount, in integer cents, rounding cumulatively: the rounding remainder
lands on the last line, and refunding every line refunds exactly what was charged minus shipping. A
line's share is split across its units the same way (`units_value`), so refunding one unit, then the
rest, adds up to the line's share too. Shipping is refunded as an amount, or with the whole order.

`decide` runs under the order's row lock (shop.store.lifecycle.lock), like every move of the order:
it checks the refund against what is left (what was charged, less refunds Stripe confirmed and ours
not failed), writes the `refunds` row, and puts the stock of the refunded units back if asked. Two
staff refunding at once are served one after the other, and the second sees the first's row: nobody
refunds more than is left. Stripe is asked afterwards (shop.payments.checkout.ask_partial_refund),
with the row's key, so a retry asks for the same refund; its `charge.refunded` event records the
amount (`orders.refunded_cents`), and a full refund cancels an unshipped order as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update

from shop.extensions import db
from shop.store.models import Order, OrderItem, PaymentStatus, Product, Refund, RefundStatus
from shop.store.money import format_money

REFUNDABLE = frozenset({PaymentStatus.PAID})  # a whole refund under way (refund_pending) or done: nothing left


class RefundRefused(Exception):
    """A refund that cannot be made; the message is one sentence for the person who asked."""


def line_shares(amounts: list[int], pool: int) -> list[int]:
    """`pool` cents split across lines in proportion to their `amounts`, cumulatively rounded down: each
    share is within a cent of its exact proportion, none is negative, and they add up to `pool` exactly
    (the remainder on the last line). Lines that are all free share nothing but the last takes the pool."""
    total = sum(amounts)
    if not amounts:
        return []
    if total <= 0:
        return [0] * (len(amounts) - 1) + [pool]
    shares, running, given = [], 0, 0
    for amount in amounts:
        running += amount
        upto = pool * running // total
        shares.append(upto - given)
        given = upto
    return shares


def units_value(share: int, quantity: int, already: int, more: int) -> int:
    """What refunding `more` units of a line of `quantity` units is worth, after `already` were refunded:
    the line's `share` split across its units cumulatively, so every unit refunded in any steps adds up
    to the share."""
    return share * (already + more) // quantity - share * already // quantity


def lines_pool(order: Order) -> int:
    """What the lines were charged together: the total less shipping (shipping is not a line's)."""
    total = order.charged_total_cents if order.charged_total_cents is not None else order.total_cents
    shipping = order.charged_shipping_cents if order.charged_shipping_cents is not None else 0
    return max(0, total - shipping)


def charged(order: Order) -> int:
    return order.charged_total_cents if order.charged_total_cents is not None else order.total_cents


@dataclass(frozen=True, slots=True)
class LineState:
    item: OrderItem
    share: int  # the line's share of what was charged
    refunded_quantity: int  # units refunded so far (refunds not failed)

    @property
    def left_quantity(self) -> int:
        return self.item.quantity - self.refunded_quantity

    def value(self, quantity: int) -> int:
        return units_value(self.share, self.item.quantity, self.refunded_quantity, quantity)


@dataclass(frozen=True, slots=True)
class Refundable:
    """What is left to refund of an order, as its page shows it and `decide` checks it."""

    left_cents: int
    lines: list[LineState]


def of_order(order_id: int) -> list[Refund]:
    """The order's partial refunds, oldest first, for its page."""
    return list(db.session.scalars(select(Refund).where(Refund.order_id == order_id).order_by(Refund.id)))


def get(refund_id: int) -> Refund | None:
    return db.session.get(Refund, refund_id)


def _active(order_id: int) -> list[Refund]:
    return list(
        db.session.scalars(
            select(Refund).where(Refund.order_id == order_id, Refund.status != RefundStatus.FAILED).order_by(Refund.id)
        )
    )


def refundable(order: Order) -> Refundable:
    """What is left: what was charged, less the larger of what Stripe confirmed refunded (which counts a
    refund made in Stripe's dashboard too) and what our refunds not failed add up to (which counts one
    Stripe has not confirmed yet); and each line's units not refunded yet."""
    active = _active(order.id)
    asked = sum(refund.amount_cents for refund in active)
    left = 0 if order.payment_status not in REFUNDABLE else max(0, charged(order) - max(order.refunded_cents, asked))
    refunded_units: dict[str, int] = {}
    for refund in active:
        for item_id, quantity in refund.lines.items():
            refunded_units[item_id] = refunded_units.get(item_id, 0) + quantity
    items = list(order.items)
    shares = line_shares([item.line_total_cents for item in items], lines_pool(order))
    return Refundable(
        left,
        [
            LineState(item, share, refunded_units.get(str(item.id), 0))
            for item, share in zip(items, shares, strict=True)
        ],
    )


def decide(
    order: Order, *, quantities: dict[int, int] | None = None, amount: int | None = None, restock: bool, by: str
) -> Refund:
    """Decide a refund of chosen units (`quantities`: order item id → units) or of an `amount`, on an
    order locked by the caller; adds its row (flushed) and puts refunded units' stock back when
    `restock`. Raises RefundRefused with the sentence to show."""
    if order.payment_status not in REFUNDABLE:
        raise RefundRefused(
            f"Order #{order.id} cannot be refunded in part: its payment is "
            f"{PaymentStatus(order.payment_status).label.lower()}."
        )
    state = refundable(order)
    chosen: dict[str, int] = {}
    if quantities:
        by_id = {line.item.id: line for line in state.lines}
        value = 0
        for item_id, quantity in quantities.items():
            line = by_id.get(item_id)
            if line is None:
                raise RefundRefused(f"Order #{order.id} has no such line; reload the page and choose again.")
            if quantity < 0 or quantity > line.left_quantity:
                raise RefundRefused(
                    f"{line.item.product_name}: {line.left_quantity} of {line.item.quantity} can still be refunded; "
                    "choose at most that many."
                )
            if quantity:
                chosen[str(item_id)] = quantity
                value += line.value(quantity)
        if not chosen:
            raise RefundRefused("Choose how many of a line to refund, or enter an amount.")
        amount = value
    if amount is None or amount <= 0:
        raise RefundRefused("Choose how many of a line to refund, or enter an amount above zero.")
    if amount > state.left_cents:
        raise RefundRefused(
            f"Only {format_money(state.left_cents, order.currency)} of order #{order.id} is left to refund; "
            "refund that much or less."
        )
    number = db.session.scalar(select(func.count()).select_from(Refund).where(Refund.order_id == order.id)) or 0
    refund = Refund(
        order_id=order.id,
        key=f"part-refund-{number + 1}",
        amount_cents=amount,
        lines=chosen,
        restock=restock and bool(chosen),
        requested_by=by,
    )
    db.session.add(refund)
    if refund.restock:
        _put_back(order, chosen)
    db.session.flush()
    return refund


def _put_back(order: Order, chosen: dict[str, int]) -> None:
    """The refunded units go back on the shelf (their goods came back, or never left). Only while the order
    still holds its stock: an order whose stock went back already (cancelled) gives nothing twice."""
    if not order.holds_stock:
        return
    items = {str(item.id): item for item in order.items}
    for item_id, quantity in sorted(chosen.items(), key=lambda pair: items[pair[0]].product_id or 0):
        product_id = items[item_id].product_id
        if product_id is not None:  # product-id order, as checkout takes them: no deadlock
            db.session.execute(
                update(Product)
                .where(Product.id == product_id)
                .values(stock=Product.stock + quantity)
                .execution_options(synchronize_session=False)
            )


def restocked(order_id: int) -> dict[int, int]:
    """Units of each order line whose stock a partial refund put back already (lifecycle.release_stock
    gives back the rest only). A failed refund's units stay put back: the goods are on the shelf."""
    rows = db.session.scalars(select(Refund.lines).where(Refund.order_id == order_id, Refund.restock.is_(True)))
    units: dict[int, int] = {}
    for lines in rows:
        for item_id, quantity in lines.items():
            units[int(item_id)] = units.get(int(item_id), 0) + quantity
    return units


def mark_failed(order_id: int, stripe_refund_id: str | None) -> None:
    """Stripe's refund.failed for one of our partial refunds: it no longer counts toward what was refunded."""
    if stripe_refund_id:
        db.session.execute(
            update(Refund)
            .where(Refund.order_id == order_id, Refund.stripe_refund_id == stripe_refund_id)
            .values(status=RefundStatus.FAILED)
            .execution_options(synchronize_session=False)
        )
