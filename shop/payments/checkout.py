"""Paying an order through Stripe Checkout, checking on it, giving up on it, and refunding it.

The order already holds its stock (shop.store.checkout). Here:

- `start` and `pay_now`: a Checkout Session per payment attempt (mode=payment, the order's price
  snapshot as line items, client_reference_id = order id, the customer's e-mail, expires_at in 31
  minutes). Checkout opens attempt 1; each *Pay now* on the order's page expires the open session
  and opens the next attempt. The attempt's number is in the session's idempotency key and
  metadata: a retried or doubled call gets the same session, a new attempt a new one (a key fixed
  per order made Stripe replay the first session, finished or not). `orders.payment_attempts` counts
  them; checkout_sessions keeps every session, and an event of any of them applies;
- `check`: read a session back from Stripe (the return page, the sweep, a cancel, Pay now) and apply
  what it says through the same functions as the webhook (a completed, unpaid session whose payment
  then failed is read from its PaymentIntent: the return page says so at once);
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import stripe
from flask import current_app, url_for
from sqlalchemy import or_, select
from stripe.params import CustomerCreateParams, CustomerCreateParamsShippingAddress, RefundCreateParams
from stripe.params.checkout import (
    SessionCreateParams,
    SessionCreateParamsLineItem,
    SessionCreateParamsShippingOption,
    SessionCreateParamsShippingOptionShippingRateData,
)

from shop.database import transaction
from shop.extensions import db
from shop.payments import PaymentsUnavailable, client, events
from shop.store import lifecycle, refunds
from shop.store.lifecycle import Move
from shop.store.models import CheckoutSession, Order, OrderStatus, PaymentStatus, Refund, RefundStatus

log = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(minutes=31)  # Stripe accepts 30 minutes to 24 hours; a minute of margin
# An attempt's deadline is decided before Stripe is asked (so that two requests for one attempt send the
# same parameters, which an idempotency key requires); one closer than this cannot be sent any more
# (Stripe refuses an expires_at under 30 minutes away), so the next request opens a new attempt.
FRESH_DEADLINE = timedelta(minutes=30, seconds=20)
MAX_PAYMENT_ATTEMPTS = 10  # sessions one order may open at Stripe; then: cancel it and check out again
REFUND_RETRY_AFTER = timedelta(minutes=2)  # a refund being asked right now is left to its asker
# A completed session's PaymentIntent back in these states: the payment (a bank debit) failed.
FAILED_INTENT = frozenset({"requires_payment_method", "canceled"})


class NothingToPay(Exception):
    """*Pay now* found nothing to pay (paid, cancelled, or a payment on its way); the message says why."""


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


def _tax_behavior() -> Literal["exclusive", "inclusive"]:
    return "inclusive" if current_app.config["STRIPE_TAX_BEHAVIOR"] == "inclusive" else "exclusive"


def _shipping_option(order: Order) -> SessionCreateParamsShippingOption:
    """The one rate the shopper chose in the shop, inline: Stripe's page shows it and charges its price
    (`shipping_cost`), which the money rule then compares with the order's `shipping_cents`. Not a list
    of every rate for the shopper to pick on Stripe's page: the choice is made before Stripe, so the
    order, its stock and its e-mail know it, and a price Stripe charged can be checked against it."""
    rate: SessionCreateParamsShippingOptionShippingRateData = {
        "type": "fixed_amount",
        "display_name": order.shipping_rate_name or "Shipping",
        "fixed_amount": {"amount": order.shipping_cents, "currency": order.currency.lower()},
    }
    if current_app.config["STRIPE_AUTOMATIC_TAX"]:
        rate["tax_behavior"] = _tax_behavior()  # shipping is taxed too where the law says so
    return {"shipping_rate_data": rate}


def session_params(
    order: Order, attempt: int, expires_at: datetime, *, customer: str | None = None
) -> SessionCreateParams:
    """What Stripe is asked for one attempt: the same for every request of that attempt (its key's rule).
    `customer`: the Stripe Customer holding the order's shipping address, when Stripe Tax is on."""
    config = current_app.config
    line_items: list[SessionCreateParamsLineItem] = []
    for item in order.items:
        line: SessionCreateParamsLineItem = {
            "quantity": item.quantity,
            "price_data": {
                "currency": order.currency.lower(),
                "unit_amount": item.unit_price_cents,
                "product_data": {"name": item.product_name},
            },
        }
        if config["STRIPE_AUTOMATIC_TAX"]:  # whether the shop's prices include the tax Stripe computes
            line["price_data"]["tax_behavior"] = _tax_behavior()
        line_items.append(line)
    params: SessionCreateParams = {
        "mode": "payment",
        "client_reference_id": str(order.id),
        "line_items": line_items,
        "expires_at": int(expires_at.timestamp()),
        # The attempt names which session speaks for the order (shop.payments.events.speaks_for).
        "metadata": {**order_metadata(order), "attempt": str(attempt)},
        # Copied onto the PaymentIntent and its charge: a refund event names its order even early.
        "payment_intent_data": {"metadata": order_metadata(order)},
        "success_url": url_for("payments.checkout_return", order_id=order.id, _external=True)
        + "?session_id={CHECKOUT_SESSION_ID}",
        # Stripe's "back" link: the order's page, which offers the one next step (pay, or see it paid).
        "cancel_url": url_for("store.order_page", order_id=order.id, _external=True),
    }
    if order.shipping_rate_name is not None:
        params["shipping_options"] = [_shipping_option(order)]
    if config["STRIPE_PROMOTION_CODES"]:
        params["allow_promotion_codes"] = True  # codes made in Stripe's dashboard, entered on its page
    if order.email:
        params["customer_email"] = order.email
    return with_customer(params, customer) if customer is not None else params


def with_customer(params: SessionCreateParams, customer: str) -> SessionCreateParams:
    """Stripe Tax on: the session is the Customer's, whose shipping address (the order's) Stripe Tax
    computes the tax from. Stripe asks for `customer_update` only when the Customer has no valid address
    (ours has one), and a session cannot name both `customer` and `customer_email` (the Customer has it)."""
    params = {**params, "customer": customer, "automatic_tax": {"enabled": True}}
    params.pop("customer_email", None)
    return params


def customer_params(order: Order) -> CustomerCreateParams:
    """The Stripe Customer of an order paid with Stripe Tax: its e-mail and the shipping address the shop
    collected, which is where Stripe Tax takes the shopper's location from (a Checkout Session has no
    address parameter of its own)."""
    address: CustomerCreateParamsShippingAddress = {
        "line1": order.ship_line1 or "",
        "postal_code": order.ship_postal_code or "",
        "city": order.ship_city or "",
        "country": order.ship_country or "",
    }
    if order.ship_line2:
        address["line2"] = order.ship_line2
    params: CustomerCreateParams = {
        "shipping": {"name": order.ship_name or "", "address": address},
        "metadata": order_metadata(order),
    }
    if order.email:
        params["email"] = order.email
    return params


def payable(order: Order) -> bool:
    """Whether a new session may be opened for the order: unpaid, placed, no payment on its way."""
    return (
        order.status == OrderStatus.PLACED
        and order.payment_status == PaymentStatus.PENDING
        and not order.payment_processing
    )


def _why_not_payable(order: Order) -> str:
    if order.status == OrderStatus.CANCELLED:
        return (
            f"Order #{order.id} was cancelled, so it can no longer be paid; put its items back in your cart "
            "and check out again."
        )
    if order.payment_status == PaymentStatus.PENDING:
        return f"The payment of order #{order.id} is on its way from your bank, so it cannot be paid twice."
    return f"Order #{order.id} is already paid."


@dataclass(frozen=True, slots=True)
class _Attempt:
    number: int
    expires_at: datetime
    url: str | None  # the attempt's session is open already: go there
    earlier_session: str | None  # the order's newest session so far, to expire before a new one opens


def _claim(order_id: int, *, user_id: int | None, pressed: int | None) -> _Attempt:
    """Under the order's row lock: the attempt to open. `pressed`: the attempt the shopper's *Pay now*
    was drawn with; that it is still the order's current one means a new attempt. Another request of
    the same attempt (a double click, two tabs, a double submit of checkout) finds the attempt already
    claimed and opens the same session with the same key and parameters, so Stripe makes one."""
    now = datetime.now(UTC)
    with transaction():
        order = lifecycle.lock(order_id, user_id=user_id)
        if not payable(order):
            raise NothingToPay(_why_not_payable(order))
        new_attempt = pressed is not None and pressed == order.payment_attempts
        if not new_attempt and order.stripe_checkout_url:
            assert order.payment_expires_at is not None, "a saved session saved its expiry"
            return _Attempt(order.payment_attempts, order.payment_expires_at, order.stripe_checkout_url, None)
        deadline = order.payment_expires_at
        if new_attempt or deadline is None or deadline < now + FRESH_DEADLINE:
            if deadline is not None:  # this attempt's key may have reached Stripe with that deadline
                if order.payment_attempts >= MAX_PAYMENT_ATTEMPTS:
                    raise NothingToPay(
                        f"Order #{order.id} has been sent to the payment page {MAX_PAYMENT_ATTEMPTS} times; cancel "
                        "it, put its items back in your cart and check out again."
                    )
                order.payment_attempts += 1
            deadline = order.payment_expires_at = now + SESSION_LIFETIME
            order.stripe_checkout_url = None  # the page offers no link to a session about to be expired
        return _Attempt(order.payment_attempts, deadline, None, order.stripe_checkout_session_id)


def start(order: Order) -> str:
    """Checkout's session for a new order (attempt 1), or the one a double submit already opened; for a
    double submit of an order with nothing left to pay, the order's page (which says why)."""
    try:
        return _open(order.id, user_id=None, pressed=None)
    except NothingToPay:
        return url_for("store.order_page", order_id=order.id)


def pay_now(order_id: int, *, user_id: int, attempt: int) -> str:
    """*Pay now* on the shopper's order page (drawn with `attempt`): expire the order's open session and
    open the next attempt's; the URL to pay at. A stale page's click (the attempt moved on) joins the
    current attempt instead of opening one more. Raises OrderNotFound (not this user's), NothingToPay,
    PaymentsUnavailable."""
    return _open(order_id, user_id=user_id, pressed=attempt)


def _open(order_id: int, *, user_id: int | None, pressed: int | None) -> str:
    attempt = _claim(order_id, user_id=user_id, pressed=pressed)
    if attempt.url is not None:
        return attempt.url
    if attempt.earlier_session is not None:
        _close_earlier(order_id, attempt)
    order = db.session.get_one(Order, order_id, populate_existing=True)
    params = session_params(order, attempt.number, attempt.expires_at)
    key = stripe_key(order, f"session-{attempt.number}")
    # Stripe Tax on: the order's Customer, made once per order (the key names the order: every attempt
    # and retry gets the same one; the order's address never changes, so nothing needs updating).
    customer = customer_params(order) if current_app.config["STRIPE_AUTOMATIC_TAX"] else None
    customer_key = stripe_key(order, "customer")
    db.session.rollback()  # no transaction stays open while Stripe is asked
    try:
        if customer is not None:
            made = client().v1.customers.create(customer, options={"idempotency_key": customer_key})
            params = with_customer(params, made.id)
        session = client().v1.checkout.sessions.create(params, options={"idempotency_key": key})
    except stripe.StripeError as exc:
        raise _unreachable(exc) from exc
    assert session.url is not None, "Stripe leaves `url` empty only for embedded Checkout; ours is hosted"
    with transaction():
        events.remember_session(order_id, session.id)  # its events are this order's, whatever comes next
        current = lifecycle.lock(order_id)
        opened = current.payment_attempts == attempt.number and payable(current)
        if opened:
            current.stripe_checkout_session_id = session.id
            current.stripe_checkout_url = session.url
            current.payment_expires_at = datetime.fromtimestamp(session.expires_at, UTC)
        later_url = current.stripe_checkout_url if payable(current) else None
        why = _why_not_payable(current)
    if opened:
        return session.url
    # The order moved on while Stripe answered (paid, cancelled, or a later attempt): nobody pays this one.
    try:
        _apply(_expire_session(order, session.id))
    except stripe.StripeError as exc:
        log.warning("order %s: a superseded session could not be expired: %s", order_id, type(exc).__name__)
    if later_url is not None:
        return later_url
    raise NothingToPay(why)


def _close_earlier(order_id: int, attempt: _Attempt) -> None:
    """Before a new attempt's session: expire the earlier one, so that one session at most can take the
    order's money. Its expiry no longer speaks for the order (the attempt moved on), but a payment made
    on it meanwhile does: the order is paid, and nothing new opens. Completed with a payment still on
    its way (a bank debit): the order goes back to waiting for that one."""
    order = db.session.get_one(Order, order_id, populate_existing=True)
    assert attempt.earlier_session is not None
    try:
        session = _expire_session(order, attempt.earlier_session)
    except stripe.StripeError as exc:
        raise _unreachable(exc) from exc
    kind = _apply(session)
    if kind != events.SESSION_COMPLETED:  # expired (or its bank debit failed): the new attempt goes ahead
        return
    with transaction():
        current = lifecycle.lock(order_id)
        earlier = events.session_attempt(session)
        if payable(current) and current.payment_attempts == attempt.number and earlier is not None:
            current.payment_attempts = earlier  # that session speaks for the order again
            current.payment_processing = True
        why = None if payable(current) else _why_not_payable(current)
    if why is not None:
        raise NothingToPay(why)


def give_up(order_id: int) -> None:
    """The session could not be created: the order fails at once and its stock goes back."""
    with transaction():
        lifecycle.take_if_allowed(lifecycle.lock(order_id), Move.FAIL, by="checkout")


def check(order: Order, session_id: str | None = None) -> str | None:
    """Ask Stripe how a session of the order stands and apply it (the webhook path, without an event):
    `session_id` when it is one of the order's (the return page names the one the shopper comes back
    from), else the order's newest. Its status ("open", "complete", "expired"); None when there was
    nothing to ask. Raises PaymentsUnavailable."""
    if order.payment_status != PaymentStatus.PENDING or order.status != OrderStatus.PLACED:
        return None
    wanted = order.stripe_checkout_session_id
    if session_id and session_id != wanted:
        known = db.session.scalar(
            select(CheckoutSession.id).where(CheckoutSession.id == session_id, CheckoutSession.order_id == order.id)
        )
        wanted = known or wanted
    db.session.rollback()
    if not wanted:
        return None
    try:
        session = client().v1.checkout.sessions.retrieve(wanted).to_dict()
    except stripe.StripeError as exc:
        raise _unreachable(exc) from exc
    _apply(session)
    return session.get("status")


def _intent_status(session: dict[str, Any]) -> str | None:
    """The status of a completed, unpaid session's PaymentIntent (None: Stripe could not say)."""
    intent = session.get("payment_intent")
    if not isinstance(intent, str) or not intent:
        return None
    try:
        return client().v1.payment_intents.retrieve(intent).status
    except stripe.StripeError as exc:  # then the session counts as on its way; its event will tell
        log.warning("payment intent of session %s could not be read: %s", session.get("id"), type(exc).__name__)
        return None


def _kind(session: dict[str, Any]) -> str | None:
    """Which event a session read back from Stripe amounts to (None: still open)."""
    status = session.get("status")
    if status == "expired":
        return events.SESSION_EXPIRED
    if status != "complete":
        return None
    if (
        session.get("payment_status") not in ("paid", "no_payment_required")
        and _intent_status(session) in FAILED_INTENT
    ):
        return events.ASYNC_FAILED  # completed with a bank debit that has failed since
    return events.SESSION_COMPLETED


def _apply(session: dict[str, Any]) -> str | None:
    """Apply a session read back from Stripe; the event it amounted to (None: still open)."""
    kind = _kind(session)
    if kind is None:
        return None
    with transaction():
        applied = events.apply_session(session, kind)
    if applied.refused:
        log.warning("session %s refused: %s", session.get("id"), applied.refused)
    if applied.after_commit is not None:
        applied.after_commit()
    return kind


def _expire_session(order: Order, session_id: str) -> dict[str, Any]:
    """Expire one of the order's sessions at Stripe if it is open; the session as it now stands. The key
    names the session: each of an order's sessions is expired once."""
    key = stripe_key(order, f"expire-{session_id}")
    db.session.rollback()  # no transaction stays open while Stripe is asked
    sessions = client().v1.checkout.sessions
    session = sessions.retrieve(session_id).to_dict()
    if session.get("status") == "open":
        try:
            session = sessions.expire(session_id, options={"idempotency_key": key}).to_dict()
        except stripe.InvalidRequestError:  # completed or expired meanwhile: read how it ended
            session = sessions.retrieve(session_id).to_dict()
    return session


def _expire(order: Order) -> dict[str, Any]:
    """Expire the order's newest session at Stripe; the session as it now stands."""
    session_id = order.stripe_checkout_session_id
    assert session_id, "sweep and cancel expire only an order whose session was saved"
    return _expire_session(order, session_id)


def _give_up_if_left_without_session(order_id: int, session: dict[str, Any], *, by: str) -> bool:
    """The order's newest session is finished but belongs to an earlier attempt (the current one's
    session could not be created): nothing is left to pay it with, so it fails and its stock goes back.
    Whether it did."""
    if session.get("status") == "open":
        return False
    with transaction():
        order = lifecycle.lock(order_id)
        if not payable(order) or order.stripe_checkout_url or events.speaks_for(order, session):
            return False
        return lifecycle.take_if_allowed(order, Move.FAIL, by=by) is not None


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
        _give_up_if_left_without_session(order.id, session, by="checkout")
        expired += session.get("status") == "expired"
    return expired


def sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Orders still pending past their session's expiry: ask Stripe, expire, give the stock back.
    And refunds, whole or partial, decided but not accepted by Stripe yet (it could not be reached):
    asked again, each with its own idempotency key."""
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
    # Partial refunds staff decided while Stripe could not be reached: asked again with their own keys.
    partial_refunds_due = db.session.scalars(
        select(Refund.id)
        .where(
            Refund.status == RefundStatus.REQUESTED,
            Refund.stripe_refund_id.is_(None),
            Refund.created_at < now - REFUND_RETRY_AFTER,
        )
        .order_by(Refund.id)
    ).all()
    db.session.rollback()
    counts = {"released": 0, "paid": 0, "waiting": 0, "refunds asked": 0, "partial refunds asked": 0}
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
        _give_up_if_left_without_session(order.id, session, by="sweep")
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
    for refund_id in partial_refunds_due:
        try:
            ask_partial_refund(refund_id)
        except (PaymentsUnavailable, refunds.RefundRefused):
            continue  # still unreachable (asked at the next sweep), or refused (marked failed, logged)
        counts["partial refunds asked"] += 1
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
        if unpaid and order.status == OrderStatus.CANCELLED and order.payment_status == PaymentStatus.FAILED:
            taken = None  # expiring its session failed it just now: cancelled, stock back, as asked
        else:
            taken = lifecycle.take(order, lifecycle.cancel_move(order), by=by)
    if taken is not None and taken.refund_key is not None:
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
    try:
        created = _refund_at_stripe(order, {"metadata": order_metadata(order)}, key)
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


def _refund_at_stripe(order: Order, refund: RefundCreateParams, key: str) -> stripe.Refund:
    """Ask Stripe for `refund` of the order's payment with `key`, no transaction left open meanwhile.
    Raises stripe.StripeError."""
    intent = order.stripe_payment_intent_id or _payment_intent_of(order)
    if intent:  # without one (nothing was charged) Stripe refuses the refund, and says so
        refund["payment_intent"] = intent
    db.session.rollback()
    return client().v1.refunds.create(refund, options={"idempotency_key": key})


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


def refund_part(
    order_id: int, *, quantities: dict[int, int] | None = None, amount: int | None = None, restock: bool, by: str
) -> Refund:
    """Refund chosen units of an order's lines, or an amount (shop.store.refunds): decided under the order's
    row lock (two staff at once are served one after the other, and the second sees what is left), then
    asked of Stripe (`ask_partial_refund`). Raises OrderNotFound, RefundRefused or PaymentsUnavailable
    (the refund stays decided; the order's page offers to ask again)."""
    with transaction():
        order = lifecycle.lock(order_id)
        refund = refunds.decide(order, quantities=quantities, amount=amount, restock=restock, by=by)
        refund_id = refund.id
    log.info("order %s: partial refund %s decided by %s", order_id, refund_id, by)
    return ask_partial_refund(refund_id)


def ask_partial_refund(refund_id: int) -> Refund:
    """Ask Stripe for a decided partial refund, with its own idempotency key: asking again (a retry, a
    second click) asks for the same refund, and Stripe makes it once. Raises RefundRefused when Stripe
    refuses it (the row is marked failed: it no longer counts toward what is left), PaymentsUnavailable
    when Stripe cannot be reached (the row stays requested)."""
    refund = db.session.get_one(Refund, refund_id, populate_existing=True)
    if refund.stripe_refund_id or refund.status != RefundStatus.REQUESTED:
        db.session.rollback()
        return refund
    order = db.session.get_one(Order, refund.order_id)
    key = stripe_key(order, refund.key)
    params: RefundCreateParams = {"amount": refund.amount_cents, "metadata": order_metadata(order)}
    try:
        created = _refund_at_stripe(order, params, key)
    except stripe.InvalidRequestError as exc:
        db.session.rollback()
        with transaction():
            db.session.get_one(Refund, refund_id, populate_existing=True).status = RefundStatus.FAILED
        log.warning("order %s: Stripe refused partial refund %s: %s", order.id, refund_id, exc.code)
        raise refunds.RefundRefused(
            f"Stripe refused this refund of order #{order.id} ({exc.code or 'no reason given'}); "
            "check the payment in Stripe's dashboard."
        ) from exc
    except stripe.StripeError as exc:
        db.session.rollback()
        log.error("order %s: partial refund %s not asked of Stripe: %s", order.id, refund_id, type(exc).__name__)
        raise PaymentsUnavailable(
            f"The refund of order #{order.id} is decided, but the payment service could not be reached; "
            "ask Stripe again from the order's page in a minute."
        ) from exc
    log.info("order %s: partial refund %s asked of Stripe as %s", order.id, refund_id, created.id)
    with transaction():
        current = db.session.get_one(Refund, refund_id, populate_existing=True)
        if current.stripe_refund_id is None:
            current.stripe_refund_id = created.id
            if created.status == "succeeded" and current.status == RefundStatus.REQUESTED:
                current.status = RefundStatus.SUCCEEDED
    return db.session.get_one(Refund, refund_id, populate_existing=True)
