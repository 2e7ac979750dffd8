"""Orders: the shopper's history, and the status moves the staff (or the shopper, to cancel) make.

    placed → shipped → delivered   (shipped only once the payment status is `paid`)
    placed → cancelled             (the stock comes back, once)

Any other move is refused with a message. A move locks the order's row first, so two staff
members (or a shopper cancelling while staff ship) cannot both move it from `placed`. Cancelling
an order that is paid or being paid goes through shop.payments (expire the session, or refund).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Row, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import joinedload, selectinload

from shop.database import transaction
from shop.extensions import db
from shop.mail import outbox
from shop.store.models import Order, OrderItem, OrderStatus, PaymentStatus, Product

log = logging.getLogger(__name__)

ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PLACED: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.DELIVERED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}
PER_PAGE = 20


class OrderNotFound(LookupError):
    pass


class TransitionRefused(Exception):
    """A status move the map does not allow; the message is for the person who asked."""


def next_statuses(status: str | OrderStatus) -> list[OrderStatus]:
    """The moves allowed from `status`, in the map's natural order."""
    allowed = ALLOWED_TRANSITIONS[OrderStatus(status)]
    return [s for s in OrderStatus if s in allowed]


@dataclass(frozen=True, slots=True)
class OrderLine:
    product_id: int | None
    name: str
    unit_price_cents: int
    quantity: int

    @property
    def line_total_cents(self) -> int:
        return self.unit_price_cents * self.quantity


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """One order of a user's history, read in the same round trip as its lines."""

    id: int
    status: str
    payment_status: str
    email: str | None
    total_cents: int
    currency: str
    created_at: datetime
    updated_at: datetime
    items: tuple[OrderLine, ...]

    @classmethod
    def of(cls, order: Order | Row[Any], items: tuple[OrderLine, ...]) -> OrderSummary:
        """The same view of an order loaded as a model or read as a row (same attribute names), so
        that the JSON has one shape."""
        return cls(**{name: getattr(order, name) for name in _ORDER_COLUMNS}, items=items)

    @classmethod
    def of_model(cls, order: Order) -> OrderSummary:
        items = tuple(
            OrderLine(item.product_id, item.product_name, item.unit_price_cents, item.quantity) for item in order.items
        )
        return cls.of(order, items)

    @property
    def item_count(self) -> int:
        return sum(item.quantity for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "payment_status": self.payment_status,
            "email": self.email,
            "total_cents": self.total_cents,
            "currency": self.currency,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "items": [
                {
                    "product_id": item.product_id,
                    "name": item.name,
                    "unit_price_cents": item.unit_price_cents,
                    "quantity": item.quantity,
                    "line_total_cents": item.line_total_cents,
                }
                for item in self.items
            ],
        }


_ORDER_COLUMNS = tuple(field.name for field in fields(OrderSummary) if field.name != "items")


def _history_statement(*, paged: bool):
    """All orders of one user, newest first, each with its lines, in one statement.

    The orders come from an index range scan on ix_orders_user_id_created_at (read backwards:
    no sort), each order's lines from ix_order_items_order_id, aggregated to JSON by PostgreSQL,
    so the whole history is one round trip. Built once, with bound parameters.
    """
    line = OrderItem.__table__.c
    order = Order.__table__.c
    lines = (
        select(
            func.coalesce(
                func.json_agg(
                    aggregate_order_by(
                        func.json_build_array(line.product_id, line.product_name, line.unit_price_cents, line.quantity),
                        line.id,
                    )
                ),
                text("'[]'::json"),
            )
        )
        .where(line.order_id == order.id)
        .scalar_subquery()
        .label("lines")
    )
    statement = (
        select(
            order.id,
            order.status,
            order.payment_status,
            order.email,
            order.total_cents,
            order.currency,
            order.created_at,
            order.updated_at,
            lines,
        )
        .where(order.user_id == bindparam("user_id"))
        .order_by(order.created_at.desc())
    )
    if paged:
        statement = statement.limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer))
    return statement


HISTORY = _history_statement(paged=False)
HISTORY_PAGE = _history_statement(paged=True)


def history(user_id: int, *, limit: int | None = None, offset: int = 0) -> list[OrderSummary]:
    """The user's orders with their lines, newest first (no ORM objects: rows straight to views)."""
    if limit is None:
        rows = db.session.execute(HISTORY, {"user_id": user_id})
    else:
        rows = db.session.execute(HISTORY_PAGE, {"user_id": user_id, "limit": limit, "offset": offset})
    return [OrderSummary.of(row, tuple(OrderLine(*item) for item in row.lines)) for row in rows]


def get_for_user(user_id: int, order_id: int) -> Order | None:
    """One order, only if it is this user's: anyone else's is simply not there (404, not 403)."""
    return db.session.scalar(
        select(Order).where(Order.id == order_id, Order.user_id == user_id).options(selectinload(Order.items))
    )


def get(order_id: int) -> Order | None:
    """For staff: any order, with its lines and customer."""
    return db.session.scalar(
        select(Order).where(Order.id == order_id).options(selectinload(Order.items), joinedload(Order.user))
    )


def list_all(*, status: str | None = None, limit: int = PER_PAGE, offset: int = 0) -> list[Order]:
    statement = select(Order).options(joinedload(Order.user)).order_by(Order.created_at.desc(), Order.id.desc())
    if status:
        statement = statement.where(Order.status == status)
    return list(db.session.scalars(statement.limit(limit).offset(offset)))


def count_by_status() -> dict[str, int]:
    rows = db.session.execute(select(Order.status, func.count()).group_by(Order.status)).all()
    return {status.value: 0 for status in OrderStatus} | {status: count for status, count in rows}


def move(
    order_id: int,
    to: str | OrderStatus,
    *,
    by: str,
    user_id: int | None = None,
    payment_was: PaymentStatus | None = None,
    payment_becomes: PaymentStatus | None = None,
) -> Order:
    """Move an order to status `to` if the map allows it; commits. With `user_id`, only that
    user's order (the shopper's own cancel): another user's raises OrderNotFound. `payment_was`:
    refuse if the payment status is no longer what the caller saw (shop.payments checked Stripe
    on that basis); `payment_becomes`: the payment status written with the move."""
    with transaction():
        try:
            target = OrderStatus(to)
        except ValueError:
            raise TransitionRefused(f"{to!r} is not an order status.") from None
        statement = select(Order).where(Order.id == order_id).with_for_update()
        if user_id is not None:
            statement = statement.where(Order.user_id == user_id)
        order = db.session.scalar(statement.execution_options(populate_existing=True))
        if order is None:
            raise OrderNotFound(order_id)
        current = OrderStatus(order.status)
        if target not in ALLOWED_TRANSITIONS[current]:
            allowed = ", ".join(s.value for s in next_statuses(current)) or "none: it is final"
            raise TransitionRefused(
                f"Order #{order.id} is {current.value} and cannot be {target.value}; allowed from here: {allowed}."
            )
        if payment_was is not None and order.payment_status != payment_was:
            raise TransitionRefused(f"The payment of order #{order.id} just changed; look at it again and retry.")
        if target == OrderStatus.SHIPPED and order.payment_status != PaymentStatus.PAID:
            raise TransitionRefused(
                f"Order #{order.id} cannot be shipped: its payment is {order.payment_status_enum.label.lower()}."
            )
        if target == OrderStatus.CANCELLED:
            release_stock(order.id)
        if payment_becomes is not None:
            order.payment_status = payment_becomes.value
        order.status = target.value
        mailed = target == OrderStatus.SHIPPED and outbox.enqueue(db.session(), order.id, outbox.ORDER_SHIPPED)
    log.info("order %s moved from %s to %s by %s", order_id, current.value, target.value, by)
    if mailed:
        outbox.kick()
    return order


def release_stock(order_id: int) -> bool:
    """Give the order's quantities back to stock if it still holds them, in the caller's
    transaction; False if they were already given back. The flag flips in the same statement
    that checks it, so expiry, failure, cancel and the sweep together release once."""
    released = db.session.execute(
        update(Order)
        .where(Order.id == order_id, Order.holds_stock.is_(True))
        .values(holds_stock=False)
        .returning(Order.id)
        .execution_options(synchronize_session=False)
    ).first()
    if released is None:
        return False
    _return_stock(order_id)
    return True


def _return_stock(order_id: int) -> None:
    """Give the order's quantities back to stock, in product-id order (as checkout takes them)."""
    items = db.session.execute(
        select(OrderItem.product_id, OrderItem.quantity)
        .where(OrderItem.order_id == order_id, OrderItem.product_id.is_not(None))
        .order_by(OrderItem.product_id)
    ).all()
    for product_id, quantity in items:
        db.session.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(stock=Product.stock + quantity)
            .execution_options(synchronize_session=False)
        )
