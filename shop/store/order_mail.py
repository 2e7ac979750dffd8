"""The order's e-mails, rendered by the store and handed to the outbox (shop.mail.outbox, which knows
nothing of orders): "order confirmed" when the payment arrives, "order shipped".

`lifecycle.take` calls `enqueue` in the move's transaction, so a rolled-back move writes no mail.
Each mail's de-duplication key is `order-<id>.<kind>`: one mail of each kind per order, whatever
retries or replays of the move. (The form is the one migration 0007 gave the rows written before
the keys, so a mail written on either side of it counts as the same one.)
"""

from __future__ import annotations

from typing import Any

from flask import render_template
from sqlalchemy import select
from sqlalchemy.orm import Session, scoped_session, selectinload

from shop.mail import outbox
from shop.store.models import Order

ORDER_CONFIRMED = "order_confirmed"
ORDER_SHIPPED = "order_shipped"
SUBJECTS = {
    ORDER_CONFIRMED: "Order #{id} confirmed: payment received",
    ORDER_SHIPPED: "Order #{id} shipped",
}


def dedup_key(order_id: int, kind: str) -> str:
    return f"order-{order_id}.{kind}"


def enqueue(session: Session | scoped_session[Any], order_id: int, kind: str) -> bool:
    """Render the order's e-mail of this kind (templates/mail/<kind>.txt) into the outbox, in the
    caller's transaction (no commit). False when the order has no e-mail address or already has it."""
    order = session.scalar(select(Order).where(Order.id == order_id).options(selectinload(Order.items)))
    if order is None or not order.email:
        return False
    message = outbox.Message(
        to=order.email,
        subject=SUBJECTS[kind].format(id=order.id),
        body=render_template(f"mail/{kind}.txt", order=order),
        kind=kind,
        dedup_key=dedup_key(order.id, kind),
        order_id=order.id,
    )
    return outbox.enqueue(session, message)
