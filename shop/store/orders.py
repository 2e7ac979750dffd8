"""Orders: the shopper's history, and the status moves the staff (or the shopper, to cancel) make.

    placed → shipped → delivered
    placed → cancelled   (the stock comes back)

Any other move is refused with a message. A move locks the order's row first, so two staff
members (or a shopper cancelling while staff ship) cannot both move it from `placed`.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload, selectinload

from shop.extensions import db
from shop.store.models import Order, OrderItem, OrderStatus, Product

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


def orders_of_user(user_id: int):
    """All orders of user X, newest first: the statement behind /orders and /api/orders.

    An index range scan on ix_orders_user_id_created_at (read backwards), no sort.
    """
    return select(Order).where(Order.user_id == user_id).order_by(Order.created_at.desc())


def list_for_user(user_id: int, *, limit: int | None = None, offset: int = 0) -> list[Order]:
    """The user's orders with their lines: two queries (orders, then every line of them)."""
    statement = orders_of_user(user_id).options(selectinload(Order.items))
    if limit is not None:
        statement = statement.limit(limit).offset(offset)
    return list(db.session.scalars(statement))


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
    return {status.value: 0 for status in OrderStatus} | dict(rows)


def move(order_id: int, to: str | OrderStatus, *, by: str, user_id: int | None = None) -> Order:
    """Move an order to status `to` if the map allows it; commits. With `user_id`, only that
    user's order (the shopper's own cancel): another user's raises OrderNotFound."""
    try:
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
        if target == OrderStatus.CANCELLED:
            _return_stock(order.id)
        order.status = target.value
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    log.info("order %s moved from %s to %s by %s", order_id, current.value, target.value, by)
    return order


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
