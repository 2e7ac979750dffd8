"""What a Stripe event does to an order: idempotent, and right in any order of arrival.

Each effect is a move the order's payment status allows from where it is, taken under the
order's row lock, so a duplicate, a replay or a late event finds nothing left to do:

    pending ──completed (paid) / async_payment_succeeded──► paid ──charge.refunded──► refunded
    pending ──expired / async_payment_failed──► failed  (stock back, order cancelled)
    pending ──charge.refunded (before its completion)──► refunded (stock back, order cancelled)
    refund_pending ──charge.refunded──► refunded
    refund_pending / refunded ──refund.failed──► paid  (the money is still ours: staff refund it again)

The event is recorded in `webhook_events` (source 'stripe', its evt_ id) by the same transaction
as its effect (shop.webhooks.service.claim), so the log and the order never disagree.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from shop.database import transaction
from shop.extensions import db
from shop.mail import outbox
from shop.models import WebhookStatus
from shop.store import orders
from shop.store.models import Order, OrderStatus, PaymentStatus
from shop.webhooks.service import claim, describe_error, record_failure

log = logging.getLogger(__name__)

SOURCE = "stripe"
SESSION_COMPLETED = "checkout.session.completed"
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
ASYNC_FAILED = "checkout.session.async_payment_failed"
SESSION_EXPIRED = "checkout.session.expired"
CHARGE_REFUNDED = "charge.refunded"
REFUND_FAILED = "refund.failed"
HANDLED = frozenset({SESSION_COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED, SESSION_EXPIRED, CHARGE_REFUNDED, REFUND_FAILED})
MAX_ID_LENGTH = 255


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


class NotAStripeEvent(ValueError):
    pass


class OrderNotKnownYet(Exception):
    """A refund of a payment we cannot match yet: fail, so Stripe retries after the completion."""


class ProcessingFailed(Exception):
    """Processing raised; the event is recorded as `failed`. The message is the stored error."""


@dataclass(frozen=True, slots=True)
class StripeEvent:
    id: str
    type: str
    object: dict[str, Any]

    @property
    def is_handled(self) -> bool:
        return self.type in HANDLED


def parse(payload: Any) -> StripeEvent:
    """A Stripe event's envelope, checked: `{"id": "evt_…", "object": "event", "type": …, "data": {"object": {…}}}`."""
    if not isinstance(payload, dict) or payload.get("object") != "event":
        raise NotAStripeEvent("not an event object")
    event_id, kind, data = payload.get("id"), payload.get("type"), payload.get("data")
    if not isinstance(event_id, str) or not event_id.startswith("evt_") or len(event_id) > MAX_ID_LENGTH:
        raise NotAStripeEvent("no evt_ id")
    if not isinstance(kind, str) or not kind or len(kind) > 100:
        raise NotAStripeEvent("no type")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise NotAStripeEvent("no data.object")
    return StripeEvent(event_id, kind, data["object"])


def event_id_of(payload: Any) -> str | None:
    """The event id of a payload that failed `parse`, if it has a usable one (to record the failure)."""
    if isinstance(payload, dict):
        event_id = payload.get("id")
        if isinstance(event_id, str) and 0 < len(event_id) <= MAX_ID_LENGTH:
            return event_id
    return None


# --- the effects (caller's transaction; each locks the order first) ---------------------------------------


def lock_order(order_id: int) -> Order | None:
    statement = select(Order).where(Order.id == order_id).with_for_update()
    return db.session.scalar(statement.execution_options(populate_existing=True))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH else None


def mark_paid(order_id: int, payment_intent: str | None) -> bool:
    """The money arrived: pending → paid, and the "order confirmed" e-mail into the outbox."""
    order = lock_order(order_id)
    if order is None:
        return False
    if payment_intent and not order.stripe_payment_intent_id:
        order.stripe_payment_intent_id = payment_intent
    if order.payment_status == PaymentStatus.PENDING:
        order.payment_status = PaymentStatus.PAID
        db.session.flush()
        return outbox.enqueue(db.session, order.id, outbox.ORDER_CONFIRMED)
    if order.payment_status == PaymentStatus.FAILED:
        # Stripe does not complete an expired session; if it ever did, the money is real: staff see
        # a cancelled, paid order and refund it from its page.
        order.payment_status = PaymentStatus.PAID
        log.error("order %s: payment arrived after the session had failed; it needs a refund", order.id)
    return False


def mark_failed(order_id: int) -> None:
    """No money will come: pending → failed, the stock goes back (once), the order is cancelled."""
    order = lock_order(order_id)
    if order is None or order.payment_status != PaymentStatus.PENDING:
        return
    orders.release_stock(order.id)
    order.payment_status = PaymentStatus.FAILED
    if order.status == OrderStatus.PLACED:
        order.status = OrderStatus.CANCELLED


def mark_refunded(order_id: int) -> None:
    """Stripe confirms the refund: refunded; an unshipped order is cancelled and its stock comes back."""
    order = lock_order(order_id)
    if order is None or order.payment_status in (PaymentStatus.REFUNDED, PaymentStatus.FAILED):
        return
    order.payment_status = PaymentStatus.REFUNDED
    if order.status == OrderStatus.PLACED:
        orders.release_stock(order.id)
        order.status = OrderStatus.CANCELLED


def mark_refund_failed(order_id: int, reason: str | None) -> None:
    """The bank refused the refund (Stripe's `refund.failed`, after `charge.refunded` or before it): the
    money is still ours, so the order is paid again. It stays cancelled, with its stock given back, and
    its page offers staff to refund it again (with a new idempotency key: checkout.refund_key)."""
    order = lock_order(order_id)
    if order is None or order.payment_status not in (PaymentStatus.REFUND_PENDING, PaymentStatus.REFUNDED):
        return
    order.payment_status = PaymentStatus.PAID
    # Stripe's failure_reason is a code (expired_or_canceled_card, lost_or_stolen_card, unknown): no personal data.
    log.warning(
        "order %s: Stripe could not refund the payment (%s); refund it again from the order's page",
        order.id,
        reason or "no reason given",
    )


def _named_order(metadata: Any, reference: Any = None) -> Order | None:
    """The order an object's metadata (or client_reference_id) names, if its random key agrees."""
    metadata = metadata if isinstance(metadata, dict) else {}
    reference = reference if reference is not None else metadata.get("order_id")
    if not (isinstance(reference, str) and reference.isdigit() and len(reference) < 19):
        return None
    order = db.session.get(Order, int(reference))
    if order is None or metadata.get("order_key") != order.idempotency_key:
        return None
    return order


def session_order_id(session: dict[str, Any]) -> int | None:
    """Our order of a Checkout Session: the one that saved this session's id, or (if the saving did not
    happen) the one its client_reference_id and metadata name. None for a session of anyone else."""
    session_id = _text(session.get("id"))
    if session_id:
        order_id = db.session.scalar(select(Order.id).where(Order.stripe_checkout_session_id == session_id))
        if order_id is not None:
            return order_id
    order = _named_order(session.get("metadata"), session.get("client_reference_id"))
    return order.id if order is not None and order.stripe_checkout_session_id is None else None


def apply_session(session: dict[str, Any], kind: str) -> bool:
    """A Checkout Session event (or the same session read back from Stripe); True if an e-mail was queued."""
    order_id = session_order_id(session)
    if order_id is None:
        return False
    payment_intent = _text(session.get("payment_intent"))
    if kind in (SESSION_COMPLETED, ASYNC_SUCCEEDED) and session.get("payment_status") in (
        "paid",
        "no_payment_required",
    ):
        return mark_paid(order_id, payment_intent)
    if kind in (ASYNC_FAILED, SESSION_EXPIRED):
        mark_failed(order_id)
    elif payment_intent:  # completed, but an asynchronous method is still on its way
        order = lock_order(order_id)
        if order is not None and not order.stripe_payment_intent_id:
            order.stripe_payment_intent_id = payment_intent
    return False


def _refunded_order(charge: dict[str, Any]) -> int | None:
    """By payment intent once the order knows it; before its completion, by the charge's metadata."""
    payment_intent = _text(charge.get("payment_intent"))
    if payment_intent:
        order_id = db.session.scalar(select(Order.id).where(Order.stripe_payment_intent_id == payment_intent))
        if order_id is not None:
            return order_id
    order = _named_order(charge.get("metadata"))
    if order is None or order.stripe_payment_intent_id not in (None, payment_intent):
        return None
    return order.id


def apply(event: StripeEvent) -> bool:
    """The event's effect, in the caller's transaction; True if an e-mail was queued."""
    if event.type == CHARGE_REFUNDED:
        if not event.object.get("refunded"):
            return False  # a partial refund: the order stays paid (staff refund whole orders)
        order_id = _refunded_order(event.object)
        if order_id is None:
            raise OrderNotKnownYet("no order has this payment yet; Stripe will retry")
        mark_refunded(order_id)
        return False
    if event.type == REFUND_FAILED:
        order_id = _refunded_order(event.object)
        if order_id is None:  # a refund made in Stripe's dashboard of a payment that is not an order's
            log.info("refund.failed %s names no order of this shop; nothing to do", event.id)
            return False
        mark_refund_failed(order_id, _text(event.object.get("failure_reason")))
        return False
    if event.type in HANDLED:
        return apply_session(event.object, event.type)
    return False


# --- recording and processing ----------------------------------------------------------------------------


def process(event: StripeEvent, payload: Any) -> Outcome:
    """Claim the event and apply it in one transaction; a duplicate finds the claim taken."""
    status = WebhookStatus.PROCESSED if event.is_handled else WebhookStatus.IGNORED
    with transaction():
        if claim(db.session.connection(), SOURCE, event.id, event.type, status, payload) is None:
            return Outcome.DUPLICATE
        mailed = apply(event)
    if mailed:
        outbox.kick()
    return Outcome.PROCESSED if event.is_handled else Outcome.IGNORED


def process_or_record_failure(event: StripeEvent, payload: Any) -> Outcome:
    try:
        return process(event, payload)
    except Exception as exc:
        error = describe_error(exc)
        record_failure(event.id, event.type, None, payload, error, source=SOURCE)
        raise ProcessingFailed(error) from exc


def replay_event(event_id: str, payload: Any) -> str:
    """Re-process a stored Stripe event through the live path (`flask webhooks replay`, the admin)."""
    try:
        event = parse(payload)
    except NotAStripeEvent as exc:
        return f"still not a Stripe event: {exc}"
    if event.id != event_id:
        return "failed again: the stored payload belongs to another event"
    try:
        return process_or_record_failure(event, payload).value
    except ProcessingFailed as exc:
        return f"failed again: {exc}"
