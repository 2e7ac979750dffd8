"""Paying an order through Stripe Checkout, checking on it, giving up on it, and refunding it.

The order already holds its stock (shop.store.checkout). Here:

- `start`: one Checkout Session per order (mode=payment, the order's price snapshot as line
  items, client_reference_id = order id, the customer's e-mail, expires_at in 31 minutes), with
  an idempotency key (`stripe_key`) so a retried or doubled call gets the same session;
- `check`: read the session back from Stripe (the return page, the sweep, a cancel) and apply
  what it says through the same functions as the webhook;
- `sweep`: sessions past expires_at are expired at Stripe and their stock given back;
- `cancel`: a pending order's session is expired first (nobody can pay it afterwards); a paid
  one is refunded (idempotently too), then cancelled; `charge.refunded` confirms it.

Every Stripe call runs outside any transaction that changes an order; the change that follows takes
the order's row lock and re-checks its payment status (orders.move's `payment_was`), so an event
that arrived meanwhile is never overwritten.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from flask import url_for
from sqlalchemy import or_, select
from stripe.params import RefundCreateParams
from stripe.params.checkout import SessionCreateParams

from shop.database import transaction
from shop.extensions import db
from shop.payments import PaymentsUnavailable, client, events
from shop.store import orders
from shop.store.models import Order, OrderStatus, PaymentStatus

log = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(minutes=31)  # Stripe accepts 30 minutes to 24 hours; a minute of margin


def stripe_key(order: Order, action: str) -> str:
    """The idempotency key of one Stripe call about one order. The order's own checkout key (random)
    is part of it: order ids start again after a database reset, and Stripe remembers keys for 24 h."""
    return f"order-{order.id}-{order.idempotency_key}-{action}"


def refund_key(order: Order) -> str:
    """The idempotency key of a refund: one per state of the order. Asking twice from the same state (a
    double click, a retry after a database error) is one refund; after Stripe's `refund.failed` made the
    order paid again, its `updated_at` has moved, and the new request is a new refund, not the failed one."""
    return stripe_key(order, f"refund-{order.updated_at:%Y%m%dT%H%M%S.%f}")


def order_metadata(order: Order) -> dict[str, str]:
    """What Stripe's objects carry to name their order: its id, and its random checkout key, so that an
    object from before a database reset (when ids start again) names no order."""
    return {"order_id": str(order.id), "order_key": order.idempotency_key}


def _unreachable(exc: stripe.StripeError) -> PaymentsUnavailable:
    log.error("stripe call failed: %s %s", type(exc).__name__, getattr(exc, "code", None))
    return PaymentsUnavailable("We could not reach the payment service. Please try again in a minute.")


def start(order: Order) -> str:
    """The URL of the order's Checkout Session, created on first call; commits what it stores."""
    if order.stripe_checkout_url and order.payment_status == PaymentStatus.PENDING:
        return order.stripe_checkout_url
    expires_at = datetime.now(UTC) + SESSION_LIFETIME
    params: SessionCreateParams = {
        "mode": "payment",
        "client_reference_id": str(order.id),
        "line_items": [
            {
                "quantity": item.quantity,
                "price_data": {
                    "currency": order.currency.lower(),
                    "unit_amount": item.unit_price_cents,
                    "product_data": {"name": item.product_name},
                },
            }
            for item in order.items
        ],
        "expires_at": int(expires_at.timestamp()),
        "metadata": order_metadata(order),
        # Copied onto the PaymentIntent and its charge: a refund event names its order even early.
        "payment_intent_data": {"metadata": order_metadata(order)},
        "success_url": url_for("payments.checkout_return", order_id=order.id, _external=True)
        + "?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": url_for("store.order_page", order_id=order.id, _external=True),
    }
    if order.email:
        params["customer_email"] = order.email
    try:
        session = client().v1.checkout.sessions.create(
            params, options={"idempotency_key": stripe_key(order, "session")}
        )
    except stripe.StripeError as exc:
        raise _unreachable(exc) from exc
    assert session.url is not None, "Stripe leaves `url` empty only for embedded Checkout; ours is hosted"
    order.stripe_checkout_session_id = session.id
    order.stripe_checkout_url = session.url
    order.payment_expires_at = datetime.fromtimestamp(session.expires_at, UTC)
    db.session.commit()
    return session.url


def give_up(order_id: int) -> None:
    """The session could not be created: the order fails at once and its stock goes back."""
    with transaction():
        events.mark_failed(order_id)


def check(order: Order) -> None:
    """Ask Stripe how the order's session stands and apply it (the webhook path, without an event)."""
    if not order.stripe_checkout_session_id or order.payment_status != PaymentStatus.PENDING:
        return
    try:
        session = client().v1.checkout.sessions.retrieve(order.stripe_checkout_session_id)
    except stripe.StripeError as exc:
        raise _unreachable(exc) from exc
    _apply(session.to_dict(), order.id)


def _apply(session: dict[str, Any], order_id: int) -> None:
    kind = {"complete": events.SESSION_COMPLETED, "expired": events.SESSION_EXPIRED}.get(session.get("status", ""))
    if kind is None:
        return
    with transaction():
        mailed = events.apply_session(session, kind)
    if mailed:
        from shop.mail import outbox

        outbox.kick()


def _expire(order: Order) -> dict[str, Any]:
    """Expire the order's open session at Stripe; the session as it now stands."""
    session_id = order.stripe_checkout_session_id
    assert session_id, "sweep and cancel expire only an order whose session was saved"
    sessions = client().v1.checkout.sessions
    session = sessions.retrieve(session_id).to_dict()
    if session.get("status") == "open":
        try:
            session = sessions.expire(session_id, options={"idempotency_key": stripe_key(order, "expire")}).to_dict()
        except stripe.InvalidRequestError:  # completed or expired meanwhile: read how it ended
            session = sessions.retrieve(session_id).to_dict()
    return session


def sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Orders still pending past their session's expiry: ask Stripe, expire, give the stock back."""
    now = now or datetime.now(UTC)
    due = db.session.scalars(
        select(Order)
        .where(
            Order.payment_status == PaymentStatus.PENDING,
            Order.holds_stock.is_(True),
            or_(
                Order.payment_expires_at < now,
                # A session never created (the call failed and nobody gave up on it): as old as a session.
                (Order.stripe_checkout_session_id.is_(None)) & (Order.created_at < now - SESSION_LIFETIME),
            ),
        )
        .order_by(Order.id)
    ).all()
    db.session.rollback()
    counts = {"released": 0, "paid": 0, "waiting": 0}
    for order in due:
        if order.stripe_checkout_session_id is None:
            give_up(order.id)
            counts["released"] += 1
            continue
        try:
            session = _expire(order)
        except stripe.StripeError as exc:
            log.error("sweep: order %s: %s", order.id, type(exc).__name__)
            counts["waiting"] += 1
            continue
        _apply(session, order.id)
        status = db.session.scalar(select(Order.payment_status).where(Order.id == order.id))
        db.session.rollback()
        key = {"paid": "paid", "failed": "released"}.get(status or "", "waiting")  # no row (None): waiting too
        counts[key] += 1
    return counts


def cancel(order_id: int, *, by: str, user_id: int | None = None) -> Order:
    """Cancel an unshipped order, settling its money at Stripe first; commits.
    Raises orders.OrderNotFound, orders.TransitionRefused or PaymentsUnavailable."""
    statement = select(Order).where(Order.id == order_id)
    if user_id is not None:
        statement = statement.where(Order.user_id == user_id)
    order = db.session.scalar(statement.execution_options(populate_existing=True))
    if order is None:
        db.session.rollback()
        raise orders.OrderNotFound(order_id)
    if order.status != OrderStatus.PLACED and not (
        order.status == OrderStatus.CANCELLED and order.payment_status == PaymentStatus.PAID
    ):
        db.session.rollback()
        return orders.move(order_id, OrderStatus.CANCELLED, by=by, user_id=user_id)  # refuses with its message
    try:
        if order.payment_status == PaymentStatus.PENDING and order.stripe_checkout_session_id:
            _apply(_expire(order), order.id)  # paid meanwhile? then it is refunded below
            order = db.session.get(Order, order_id, populate_existing=True)
            if order is None:
                db.session.rollback()
                raise orders.OrderNotFound(order_id)
        if order.payment_status == PaymentStatus.PAID:
            return _refund(order, by=by, user_id=user_id)
    except stripe.StripeError as exc:
        db.session.rollback()
        raise _unreachable(exc) from exc
    if order.status == OrderStatus.CANCELLED:
        db.session.rollback()
        return order  # the expiry just cancelled it
    was = PaymentStatus(order.payment_status)
    becomes = PaymentStatus.FAILED if was == PaymentStatus.PENDING else None
    db.session.rollback()
    return orders.move(
        order_id, OrderStatus.CANCELLED, by=by, user_id=user_id, payment_was=was, payment_becomes=becomes
    )


def _refund(order: Order, *, by: str, user_id: int | None) -> Order:
    """Ask Stripe for the whole amount back, then cancel with payment `refund_pending`."""
    if not order.stripe_payment_intent_id and order.stripe_checkout_session_id:
        session = client().v1.checkout.sessions.retrieve(order.stripe_checkout_session_id)
        intent = session.payment_intent
        assert not isinstance(intent, stripe.PaymentIntent), "read without expand=, Stripe sends the intent's id"
        order.stripe_payment_intent_id = intent
        db.session.commit()
    refund: RefundCreateParams = {"metadata": order_metadata(order)}
    if order.stripe_payment_intent_id:  # without one (nothing was charged) Stripe refuses the refund
        refund["payment_intent"] = order.stripe_payment_intent_id
    client().v1.refunds.create(refund, options={"idempotency_key": refund_key(order)})
    log.info("order %s: refund asked of Stripe by %s", order.id, by)
    db.session.rollback()
    if order.status == OrderStatus.CANCELLED:  # a paid order that was already cancelled (payment after failure)
        return _set_refund_pending(order.id)
    try:
        return orders.move(
            order.id,
            OrderStatus.CANCELLED,
            by=by,
            user_id=user_id,
            payment_was=PaymentStatus.PAID,
            payment_becomes=PaymentStatus.REFUND_PENDING,
        )
    except orders.TransitionRefused:
        # Stripe's charge.refunded can beat us here: it cancels and gives the stock back itself (and a
        # quick refund.failed may already have made the cancelled order paid again).
        current = db.session.get(Order, order.id, populate_existing=True)
        db.session.rollback()
        if current is not None and current.status == OrderStatus.CANCELLED:
            return current
        raise


def _set_refund_pending(order_id: int) -> Order:
    with transaction():
        order = events.lock_order(order_id)
        if order is None:
            raise orders.OrderNotFound(order_id)
        if order.payment_status == PaymentStatus.PAID:
            order.payment_status = PaymentStatus.REFUND_PENDING
    return order
