"""The order's e-mails, rendered by the store and handed to the outbox (shop.mail.outbox, which knows
nothing of orders): "order confirmed" when the payment arrives, "order shipped".

`lifecycle.take` calls `enqueue` in the move's transaction, so a rolled-back move writes no mail.
Each mail's de-duplication key is `order-<id>.<kind>`: one mail of each kind per order, whatever
retries or replays of the move. (The form is the one migration 0007 gave the rows written before
the keys, so a mail written on either side of it counts as the same one.)

A mail goes to the account holder (the e-mail the order was placed with), so it greets the account
holder: the ship-to name is often someone else (a present), and is printed under "Shipping to". It
links to the order's page by its absolute address (`page_url`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app, has_request_context, render_template, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, scoped_session, selectinload

from shop.mail import outbox
from shop.store.models import Order

ORDER_CONFIRMED = "order_confirmed"
ORDER_SHIPPED = "order_shipped"
SUBJECTS = {
    ORDER_CONFIRMED: "Order #{id} confirmed: payment received",
    ORDER_SHIPPED: "Order #{id} shipped",
}


def page_url(endpoint: str, **values: Any) -> str | None:
    """A shop page's absolute address, for an e-mail: under SHOP_URL when it is set; else under the
    request being served (development: http://127.0.0.1:5000/…); None for a mail written outside a
    request without SHOP_URL (the mail then points to "Your orders" in words)."""
    base = current_app.config.get("SHOP_URL")
    if base:
        parts = urlsplit(base)
        adapter = current_app.url_map.bind(parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme)
        return adapter.build(endpoint, values, force_external=True)
    if has_request_context():
        return url_for(endpoint, _external=True, **values)
    return None


def greeting_name(order: Order) -> str | None:
    """Whom the mail greets: the account holder it is sent to, by first name (None: "Hello,")."""
    user = order.user
    if user is None or user.is_deleted:
        return None
    return user.first_name or user.last_name or None


def dedup_key(order_id: int, kind: str) -> str:
    return f"order-{order_id}.{kind}"


def enqueue(session: Session | scoped_session[Any], order_id: int, kind: str) -> bool:
    """Render the order's e-mail of this kind (templates/mail/<kind>.txt) into the outbox, in the
    caller's transaction (no commit). False when the order has no e-mail address or already has it."""
    order = session.scalar(
        select(Order).where(Order.id == order_id).options(selectinload(Order.items), joinedload(Order.user))
    )
    if order is None or not order.email:
        return False
    body = render_template(
        f"mail/{kind}.txt",
        order=order,
        greeting_name=greeting_name(order),
        order_url=page_url("store.order_page", order_id=order.id),
    )
    message = outbox.Message(
        to=order.email,
        subject=SUBJECTS[kind].format(id=order.id),
        body=body,
        kind=kind,
        dedup_key=dedup_key(order.id, kind),
        order_id=order.id,
    )
    return outbox.enqueue(session, message)
