"""Orders: the shopper's history, the staff's list, and the status moves staff make.

The moves themselves (which are allowed, what each writes, the stock they give back) are
shop.store.lifecycle's table; `move` locks the order, takes one, commits and sends its e-mail.
Cancelling an order whose money is at Stripe goes through shop.payments (expire, or refund).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Row, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import joinedload, selectinload

from shop.database import transaction
from shop.extensions import db
from shop.mail import outbox
from shop.store import lifecycle
from shop.store.lifecycle import OrderNotFound, TransitionRefused, next_statuses, staff_moves
from shop.store.models import Order, OrderItem, OrderStatus, PaymentStatus

__all__ = ["OrderNotFound", "TransitionRefused", "next_statuses", "staff_moves"]

log = logging.getLogger(__name__)

PER_PAGE = 20


def payment_words(payment_status: str, processing: bool = False) -> str:
    """Where an order's money stands, in the shopper's words (the orders list and the order's page):
    an unpaid order must not read like a paid one."""
    if payment_status == PaymentStatus.PENDING:
        return "Payment processing" if processing else "Awaiting payment"
    return {
        PaymentStatus.PAID: "Paid",
        PaymentStatus.FAILED: "Payment failed",
        PaymentStatus.REFUND_PENDING: "Refund pending",
        PaymentStatus.REFUNDED: "Refunded",
    }.get(PaymentStatus(payment_status), PaymentStatus(payment_status).label)


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
    payment_processing: bool
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

    @property
    def payment_words(self) -> str:
        return payment_words(self.payment_status, self.payment_processing)

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
            order.payment_processing,
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


def held_by_unpaid(user_id: int | None = None) -> dict[int, int]:
    """Units of each product that unpaid orders (of one shopper, or of all) hold off the shelf: for staff,
    stock that may come back; for checkout, one shopper's holds against its cap."""
    statement = (
        select(OrderItem.product_id, func.sum(OrderItem.quantity))
        .join(Order, Order.id == OrderItem.order_id)
        .where(Order.holds_stock.is_(True), Order.payment_status == PaymentStatus.PENDING)
        .group_by(OrderItem.product_id)
    )
    if user_id is not None:
        statement = statement.where(Order.user_id == user_id)
    return {product_id: int(units) for product_id, units in db.session.execute(statement) if product_id is not None}


def move(
    order_id: int, to: str | OrderStatus, *, by: str, user_id: int | None = None, tracking_number: str | None = None
) -> Order:
    """Move an order to fulfilment status `to` (ship, deliver, or cancel an unpaid one) if the table
    allows it from where the order stands under its row lock; commits. With `user_id`, only that
    user's order: another user's raises OrderNotFound. `tracking_number` goes with shipping only."""
    try:
        target = OrderStatus(to)
    except ValueError:
        raise TransitionRefused(f"{to!r} is not an order status.") from None
    with transaction():
        order = lifecycle.lock(order_id, user_id=user_id)
        wanted = lifecycle.STAFF_MOVES.get(target)
        if wanted is None:
            raise TransitionRefused(lifecycle.refusal(order, target))
        taken = lifecycle.take(order, wanted, by=by, tracking_number=tracking_number)
    if taken.mailed:
        outbox.kick()
    return order
