"""Paying an order through Stripe Checkout, checking on it, giving up on it, and refunding it.

The order already holds its stock (shop.store.checkout). Here:

- `start`: one Checkout Session per order (mode=payment, the order's price snapshot as line
  items, client_reference_id = order id, the customer's e-mail, expires_at in 31 minutes), with
  an idempotency key (`stripe_key`) so a retried or doubled call gets the same session;
- `check`: read the session back from Stripe (the return page, the sweep, a cancel) and apply
  what it says through the same functions as the webhook;
- `expire_earlier_checkouts`: a new checkout expires the shopper's earlier open sessions;
- `sweep`: sessions past expires_at are expired at Stripe and their stock given back, and refunds
  Stripe could not be asked for are asked again;
- `cancel`: a pending order's session is expired first (nobody can pay it afterwards); then the
  order is moved under its row lock (shop.store.lifecycle), and a paid one is refunded only after
  that move committed (`ask_refund`, idempotently); `charge.refunded` confirms it.

Every Stripe call runs outside any transaction that changes an order; what Stripe answered is then
applied as a move of the state machines under the order's row lock, from wherever the order stands
by then, so an event that arrived meanwhile is never overwritten.
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
from shop.store import lifecycle
from shop.store.lifecycle import Move
from shop.store.models import Order, OrderStatus, PaymentStatus

log = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(minutes=31)  # Stripe accepts 30 minutes to 24 hours; a minute of margin
REFUND_RETRY_AFTER = timedelta(minutes=2)  # a refund being asked right now is left to its asker


def stripe_key(order: Order, action: str) -> str:
    """The idempotency key of one Stripe call about one order. The order's own checkout key (random)
    is part of it: order ids start again after a database reset, and Stripe remembers keys for 24 h."""
    return f"order-{order.id}-{order.idempotency_key}-{action}"


def refund_key(order: Order) -> str:
    """The idempotency key of a refund: one per refund the state machine decided (`refund_requests`,
    which each refunding move counts). Two cancels at once, a retry and the sweep derive the same key,
    so Stripe makes one refund; after Stripe's `refund.failed` made the order paid again, the next
    refund is a new request with a new key, not a replay of the failed one."""
    return stripe_key(order, f"refund-{order.refund_requests}")


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
    events.remember_session(order.id, session.id)
    db.session.commit()
    return session.url


def give_up(order_id: int) -> None:
    """The session could not be created: the order fails at once and its stock goes back."""
    with transaction():
        lifecycle.take_if_allowed(lifecycle.lock(order_id), Move.FAIL, by="checkout")


def check(order: Order) -> None:
    """Ask Stripe how the order's session stands and apply it (the webhook path, without an event)."""
    if not order.stripe_checkout_session_id or order.payment_status != PaymentStatus.PENDING:
        return
    try:
        session = client().v1.checkout.sessions.retrieve(order.stripe_checkout_session_id)
    except stripe.StripeError as exc:
        raise _unreachable(exc) from exc
    _apply(session.to_dict())


def _apply(session: dict[str, Any]) -> None:
    kind = {"complete": events.SESSION_COMPLETED, "expired": events.SESSION_EXPIRED}.get(session.get("status", ""))
    if kind is None:
        return
    with transaction():
        applied = events.apply_session(session, kind)
    if applied.refused:
        log.warning("session %s refused: %s", session.get("id"), applied.refused)
    if applied.after_commit is not None:
        applied.after_commit()


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


def expire_earlier_checkouts(user_id: int, *, keep_key: str) -> int:
    """Before a new checkout: expire the shopper's earlier open sessions at Stripe and give their stock
    back, so that one shopper holds stock for one checkout at a time. An order whose session is
    complete but whose asynchronous payment is still on its way cannot be expired (Stripe expires
    only open sessions): it is kept, and counts toward checkout's caps. `keep_key`: the checkout
    form's own order (a double submit must not expire the order it is about to find). Returns how
    many were expired; a Stripe error leaves that order as it is (it counts toward the caps)."""
    earlier = db.session.scalars(
        select(Order).where(
            Order.user_id == user_id,
            Order.payment_status == PaymentStatus.PENDING,
            Order.status == OrderStatus.PLACED,
            Order.stripe_checkout_session_id.is_not(None),
            Order.idempotency_key != keep_key,
        )
    ).all()
    db.session.rollback()
    expired = 0
    for order in earlier:
        try:
            session = _expire(order)
        except stripe.StripeError as exc:
            log.warning("order %s: its earlier session could not be expired: %s", order.id, type(exc).__name__)
            continue
        _apply(session)
        expired += session.get("status") == "expired"
    return expired


def sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Orders still pending past their session's expiry: ask Stripe, expire, give the stock back.
    And refunds decided but not accepted by Stripe yet (it could not be reached): asked again."""
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
    refunds_due = db.session.scalars(
        select(Order.id)
        .where(
            Order.payment_status == PaymentStatus.REFUND_PENDING,
            Order.stripe_refund_id.is_(None),
            Order.updated_at < now - REFUND_RETRY_AFTER,
        )
        .order_by(Order.id)
    ).all()
    db.session.rollback()
    counts = {"released": 0, "paid": 0, "waiting": 0, "refunds asked": 0}
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
        _apply(session)
        status = db.session.scalar(select(Order.payment_status).where(Order.id == order.id))
        db.session.rollback()
        key = {"paid": "paid", "failed": "released"}.get(status or "", "waiting")  # no row (None): waiting too
        counts[key] += 1
    for order_id in refunds_due:
        try:
            ask_refund(order_id)
        except PaymentsUnavailable:
            continue
        counts["refunds asked"] += 1
    return counts


def cancel(order_id: int, *, by: str, user_id: int | None = None) -> Order:
    """Cancel an unshipped order (or refund a cancelled one whose money is still ours); commits.

    The order's new state is decided under its row lock before Stripe is asked for a refund, so a
    ship racing this cancel either wins (the cancel is refused, nothing is refunded) or finds the
    order cancelled. An unpaid order's open session is expired first, so nobody pays it afterwards
    (if it was paid meanwhile, the order is paid and the move refunds it).
    Raises orders.OrderNotFound, orders.TransitionRefused or PaymentsUnavailable."""
    statement = select(Order).where(Order.id == order_id)
    if user_id is not None:
        statement = statement.where(Order.user_id == user_id)
    order = db.session.scalar(statement.execution_options(populate_existing=True))
    if order is None:
        db.session.rollback()
        raise lifecycle.OrderNotFound(order_id)
    unpaid = order.status == OrderStatus.PLACED and order.payment_status == PaymentStatus.PENDING
    if unpaid and order.stripe_checkout_session_id:
        try:
            session = _expire(order)
        except stripe.StripeError as exc:
            db.session.rollback()
            raise _unreachable(exc) from exc
        _apply(session)
    with transaction():
        order = lifecycle.lock(order_id, user_id=user_id)
        taken = lifecycle.take(order, lifecycle.cancel_move(order), by=by)
    if taken.refund_key is not None:
        ask_refund(order_id)
    return db.session.get_one(Order, order_id, populate_existing=True)


def ask_refund(order_id: int) -> None:
    """Ask Stripe to refund an order the state machine has put in `refund_pending`, with the idempotency
    key of that refund request: whoever asks (the cancel, a retry, the sweep) asks for the same refund.
    Raises PaymentsUnavailable (the order stays `refund_pending`, and the sweep asks again)."""
    order = db.session.get(Order, order_id, populate_existing=True)
    if order is None or order.payment_status != PaymentStatus.REFUND_PENDING or order.stripe_refund_id:
        db.session.rollback()
        return
    request_number, key = order.refund_requests, refund_key(order)
    refund: RefundCreateParams = {"metadata": order_metadata(order)}
    try:
        intent = order.stripe_payment_intent_id or _payment_intent_of(order)
        if intent:  # without one (nothing was charged) Stripe refuses the refund, and says so
            refund["payment_intent"] = intent
        db.session.rollback()
        created = client().v1.refunds.create(refund, options={"idempotency_key": key})
    except stripe.StripeError as exc:
        db.session.rollback()
        log.error("order %s: the refund could not be asked of Stripe: %s", order_id, type(exc).__name__)
        raise PaymentsUnavailable(
            f"Order #{order_id} is cancelled, but the payment service could not be reached to refund it; "
            "the refund will be asked again in a few minutes."
        ) from exc
    log.info("order %s: refund %s asked of Stripe (%s)", order_id, created.id, key)
    with transaction():
        current = lifecycle.lock(order_id)
        if current.refund_requests == request_number and current.stripe_refund_id is None:
            current.stripe_refund_id = created.id


def _payment_intent_of(order: Order) -> str | None:
    """The order's PaymentIntent, read from its session when no event has told us yet; remembered."""
    if not order.stripe_checkout_session_id:
        return None
    session = client().v1.checkout.sessions.retrieve(order.stripe_checkout_session_id)
    intent = session.payment_intent
    assert not isinstance(intent, stripe.PaymentIntent), "read without expand=, Stripe sends the intent's id"
    if intent:
        with transaction():
            current = lifecycle.lock(order.id)
            current.stripe_payment_intent_id = current.stripe_payment_intent_id or intent
    return intent
