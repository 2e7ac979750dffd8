"""What a Stripe event (or a Checkout Session read back from Stripe) does to an order.

Each effect is a move of the order's state machines (shop.store.lifecycle) taken under the order's
row lock, only when the table allows it from where the order stands, so a duplicate, a replay or a
late event finds nothing left to do:

- `checkout.session.completed` (paid) and `…async_payment_succeeded`: PAY, only for a session the
  order created and only when what Stripe charged matches what the order asked (`charge_mismatch`);
  otherwise the order stays unpaid, a warning for staff is written on it, and the event is refused;
- `checkout.session.expired` and `…async_payment_failed` of the session that speaks for the order
  (`speaks_for`: its newest, of its current payment attempt): FAIL. An earlier attempt's session,
  expired by *Pay now*, says nothing of the one the shopper pays with now;
- `checkout.session.completed` unpaid (a bank debit on its way) of that session: the order waits for
  it (`payment_processing`), and its page offers no *Pay now*;
- `charge.refunded`: the charge's `amount_refunded`, if this is the newest such event, less any refund
  it counts that failed since, becomes the order's `refunded_cents` (shop.payments.stripe_refunds: a
  replayed, reordered or late event changes nothing it should not); the whole amount, with no failed
  refund in it, also takes REFUNDED (an unshipped order is cancelled, as before partial refunds);
- `refund.failed`: REFUND_FAILED (the money is ours again; staff refund it anew); the failed amount
  comes off `refunded_cents`, and a partial refund of ours (shop.store.refunds) is marked failed; the
  same refund told twice does nothing more.

The event's claim in `webhook_events` commits with its effect (shop.webhooks.inbox).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from shop.extensions import db
from shop.mail import outbox
from shop.payloads import is_storable
from shop.payments import stripe_refunds
from shop.payments.stripe_refunds import Failure, Total
from shop.store import lifecycle, refunds
from shop.store.lifecycle import Move
from shop.store.models import CheckoutSession, Order, PaymentStatus
from shop.store.money import format_money
from shop.webhooks.inbox import Applied

log = logging.getLogger(__name__)

SESSION_COMPLETED = "checkout.session.completed"
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
ASYNC_FAILED = "checkout.session.async_payment_failed"
SESSION_EXPIRED = "checkout.session.expired"
CHARGE_REFUNDED = "charge.refunded"
REFUND_FAILED = "refund.failed"
HANDLED = frozenset({SESSION_COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED, SESSION_EXPIRED, CHARGE_REFUNDED, REFUND_FAILED})
MAX_ID_LENGTH = 255
ORDER_ID = re.compile(r"[1-9][0-9]{0,17}")
BY_STRIPE = "stripe"


class NotAStripeEvent(ValueError):
    pass


class OrderNotKnownYet(Exception):
    """A refund of a payment we cannot match yet: fail, so Stripe retries after the completion."""


@dataclass(frozen=True, slots=True)
class StripeEvent:
    id: str
    type: str
    object: dict[str, Any]
    created: datetime | None = None  # when Stripe made the event (whole seconds); None if it says no time

    @property
    def is_handled(self) -> bool:
        return self.type in HANDLED


def parse(payload: Any) -> StripeEvent:
    """A Stripe event's envelope, checked: `{"id": "evt_…", "object": "event", "type": …, "data": {"object": {…}}}`."""
    if not isinstance(payload, dict) or payload.get("object") != "event":
        raise NotAStripeEvent("not an event object")
    if not is_storable(payload):
        raise NotAStripeEvent("the body has text that cannot be stored (a NUL character or a lone surrogate)")
    event_id, kind, data = payload.get("id"), payload.get("type"), payload.get("data")
    if not isinstance(event_id, str) or not event_id.startswith("evt_") or len(event_id) > MAX_ID_LENGTH:
        raise NotAStripeEvent("no evt_ id")
    if not isinstance(kind, str) or not kind or len(kind) > 100:
        raise NotAStripeEvent("no type")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise NotAStripeEvent("no data.object")
    return StripeEvent(event_id, kind, data["object"], _time(payload.get("created")))


def event_id_of(payload: Any) -> str | None:
    """The event id of a payload that failed `parse`, if it has a usable one (to record the failure)."""
    if isinstance(payload, dict):
        event_id = payload.get("id")
        if isinstance(event_id, str) and 0 < len(event_id) <= MAX_ID_LENGTH:
            return event_id
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH else None


MAX_AMOUNT = 2**31 - 1  # the orders' amount columns are INTEGER (Stripe's own limit is 99,999,999)


LATEST_TIME = 2**37  # Unix seconds, about the year 6325: anything later is no time of Stripe's


def _time(value: Any) -> datetime | None:
    """A Stripe time (`created`: Unix seconds) as a datetime; None for anything that is not one."""
    if type(value) is int and 0 < value < LATEST_TIME:
        return datetime.fromtimestamp(value, UTC)
    return None


def _amount(value: Any) -> int | None:
    """An amount in the currency's smallest unit, as Stripe writes it: a non-negative integer (not a bool)
    that the orders' INTEGER columns can hold (a larger one is no amount of Stripe's: None)."""
    return value if type(value) is int and 0 <= value <= MAX_AMOUNT else None


# --- which order ------------------------------------------------------------------------------------------


def _named_order(metadata: Any, reference: Any = None) -> Order | None:
    """The order an object's metadata (or client_reference_id) names, if its random key agrees."""
    metadata = metadata if isinstance(metadata, dict) else {}
    reference = reference if reference is not None else metadata.get("order_id")
    if not (isinstance(reference, str) and ORDER_ID.fullmatch(reference)):  # "²".isdigit() is True
        return None
    order = db.session.get(Order, int(reference))
    if order is None or metadata.get("order_key") != order.idempotency_key:
        return None
    return order


def session_order_id(session: dict[str, Any]) -> int | None:
    """Our order of a Checkout Session: the one that created it (checkout_sessions), or, if saving the
    new session's id did not happen (a crash right after Stripe answered), the order its metadata names
    with its random key, which only this shop puts there; that session is remembered now. None for a
    session of anyone else, or of an order from before a database reset."""
    session_id = _text(session.get("id"))
    if session_id is None:
        return None
    order_id = db.session.scalar(select(CheckoutSession.order_id).where(CheckoutSession.id == session_id))
    if order_id is not None:
        return order_id
    order = _named_order(session.get("metadata"), session.get("client_reference_id"))
    if order is None:
        return None
    remember_session(order.id, session_id)
    return order.id


def session_attempt(session: dict[str, Any]) -> int | None:
    """The payment attempt a session was opened for (its metadata; a session from before attempts
    were counted carries none, and was the first). None for a value this shop never writes."""
    metadata = session.get("metadata")
    attempt = metadata.get("attempt", "1") if isinstance(metadata, dict) else "1"
    if not (isinstance(attempt, str) and ORDER_ID.fullmatch(attempt) and len(attempt) <= 9):
        return None
    return int(attempt)


def speaks_for(order: Order, session: dict[str, Any]) -> bool:
    """Whether a session's expiry or failure is the order's: only the order's newest session (or one
    whose id was never saved, after a crash) of its current attempt. While *Pay now* opens the next
    attempt, the earlier session is expired first and its event must not fail the order."""
    newest = order.stripe_checkout_session_id in (None, session.get("id"))
    return newest and session_attempt(session) == order.payment_attempts


def remember_session(order_id: int, session_id: str) -> None:
    """Record that the order created this Checkout Session (in the caller's transaction; idempotent)."""
    db.session.execute(
        insert(CheckoutSession).values(id=session_id, order_id=order_id).on_conflict_do_nothing(index_elements=["id"])
    )


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


# --- the money rule ----------------------------------------------------------------------------------------


def session_shipping(session: dict[str, Any]) -> int | None:
    """What the session charged for shipping before tax and discounts: `shipping_cost.amount_subtotal`
    (the rate's own price, comparable with the order's), else `total_details.amount_shipping`; 0 for a
    session that names no shipping at all (the older shape, and orders without a rate); None when a
    field is there but is not an amount (the money rule then refuses)."""
    cost = session.get("shipping_cost")
    if isinstance(cost, dict) and "amount_subtotal" in cost:
        return _amount(cost.get("amount_subtotal"))
    details = session.get("total_details")
    if isinstance(details, dict) and details.get("amount_shipping") is not None:
        return _amount(details.get("amount_shipping"))
    return 0 if cost is None else None


def charge_mismatch(order: Order, session: dict[str, Any]) -> str | None:
    """Why this paid session does not pay this order, or None when it does: Stripe's `amount_subtotal`
    (before tax, shipping and discounts) must be the order's line total, in the order's currency, its
    shipping the order's (`session_shipping`: the rate the shopper chose at checkout), and
    `amount_total` must be an amount. Anything missing or odd is a mismatch: the rule fails closed.
    Tax and discounts are Stripe's to compute, so they are recorded (`record_charge`), not compared."""
    session_id = _text(session.get("id")) or "without an id"
    subtotal, total, currency = (
        _amount(session.get("amount_subtotal")),
        _amount(session.get("amount_total")),
        session.get("currency"),
    )
    if subtotal is None or total is None or not isinstance(currency, str) or len(currency) != 3:
        return (
            f"Stripe's session {session_id} does not state its amounts and currency, so order #{order.id} was not "
            "marked paid; check the payment in Stripe's dashboard."
        )
    if currency.upper() != order.currency:
        return (
            f"Stripe's session {session_id} charged in {currency.upper()[:3]} but order #{order.id} is in "
            f"{order.currency}, so it was not marked paid; check the payment in Stripe's dashboard and refund it."
        )
    if subtotal != order.lines_cents:
        return (
            f"Stripe's session {session_id} charged a subtotal of {format_money(subtotal, order.currency)} but order "
            f"#{order.id} asked for {format_money(order.lines_cents, order.currency)}, so it was not marked paid; "
            "check the payment in Stripe's dashboard and refund it."
        )
    shipping = session_shipping(session)
    if shipping != order.shipping_cents:
        charged = "an unreadable amount" if shipping is None else format_money(shipping, order.currency)
        return (
            f"Stripe's session {session_id} charged {charged} for shipping but order #{order.id} asked for "
            f"{format_money(order.shipping_cents, order.currency)}, so it was not marked paid; check the payment in "
            "Stripe's dashboard and refund it."
        )
    return None


def record_charge(order: Order, session: dict[str, Any]) -> None:
    """What Stripe charged, part by part, from the paying session (its amounts were checked by
    `charge_mismatch`). A session without `total_details` (the older shape, or a field that is not
    an amount) leaves that part NULL: pages then show the total alone."""
    details = session.get("total_details")
    details = details if isinstance(details, dict) else {}
    order.charged_total_cents = _amount(session.get("amount_total"))
    order.charged_subtotal_cents = _amount(session.get("amount_subtotal"))
    order.charged_discount_cents = _amount(details.get("amount_discount"))
    order.charged_shipping_cents = _amount(details.get("amount_shipping"))
    order.charged_tax_cents = _amount(details.get("amount_tax"))


# --- the effects (caller's transaction; each locks the order first) ---------------------------------------


def _after(taken: lifecycle.Taken | None) -> Applied:
    return Applied(after_commit=outbox.kick if taken is not None and taken.mailed else None)


def apply_session(session: dict[str, Any], kind: str) -> Applied:
    """A Checkout Session event (or the same session read back from Stripe), in the caller's transaction."""
    order_id = session_order_id(session)
    if order_id is None:
        return Applied()
    order = lifecycle.lock(order_id)
    payment_intent = _text(session.get("payment_intent"))
    if payment_intent and not order.stripe_payment_intent_id:
        order.stripe_payment_intent_id = payment_intent
    if kind in (SESSION_COMPLETED, ASYNC_SUCCEEDED) and session.get("payment_status") in (
        "paid",
        "no_payment_required",
    ):
        return _pay(order, session)
    if not speaks_for(order, session):
        return Applied()  # an earlier session's end says nothing of the one the shopper pays with now
    if kind in (ASYNC_FAILED, SESSION_EXPIRED):
        lifecycle.take_if_allowed(order, Move.FAIL, by=BY_STRIPE)
    elif kind == SESSION_COMPLETED and lifecycle.allowed(order, Move.PAY):
        # Completed, but an asynchronous method (a bank debit) is still on its way: nothing is left to
        # pay at the session's page, and the order waits for the money or for its failure.
        order.payment_processing = True
        order.stripe_checkout_url = None
    return Applied()


def _pay(order: Order, session: dict[str, Any]) -> Applied:
    problem = charge_mismatch(order, session)
    if problem is not None:
        order.payment_warning = problem
        return Applied(refused=problem)
    move = Move.PAY if lifecycle.allowed(order, Move.PAY) else Move.PAY_AFTER_FAILURE
    if lifecycle.allowed(order, move):
        record_charge(order, session)  # before the move: its "order confirmed" e-mail shows the breakdown
    taken = lifecycle.take_if_allowed(order, move, by=BY_STRIPE)
    if taken is not None:
        # The paying session's PaymentIntent is the one a refund goes to (an earlier attempt's may be known).
        order.stripe_payment_intent_id = _text(session.get("payment_intent")) or order.stripe_payment_intent_id
        if move == Move.PAY_AFTER_FAILURE:
            # Stripe does not complete an expired session; if it ever did, the money is real: staff see
            # a cancelled, paid order and refund it from its page.
            log.error("order %s: payment arrived after the session had failed; it needs a refund", order.id)
    return _after(taken)


def apply(event: StripeEvent) -> Applied:
    """The event's effect, in the caller's transaction."""
    if event.type == CHARGE_REFUNDED:
        order_id = _refunded_order(event.object)
        if order_id is None and not event.object.get("refunded"):
            # Staff refund part of paid orders only, whose payment is known: this is another payment's.
            log.info("charge.refunded %s (partial) names no order of this shop; nothing to do", event.id)
            return Applied()
        if order_id is None:
            raise OrderNotKnownYet("no order has this payment yet; Stripe will retry")
        order = lifecycle.lock(order_id)
        total = stripe_refunds.charge_refunded(
            order, _amount(event.object.get("amount_refunded")), event.object.get("refunded") is True, event.created
        )
        if total is Total.IN_FULL:  # the whole amount: the order is refunded (and cancelled if unshipped)
            lifecycle.take_if_allowed(order, Move.REFUNDED, by=BY_STRIPE)
        elif total is Total.PART and order.payment_status == PaymentStatus.REFUNDED:
            # A newer total than the one that refunded the order, and smaller: that refund failed since (its
            # refund.failed, older than this total, changes nothing when it comes: the warning is said here).
            if lifecycle.take_if_allowed(order, Move.REFUND_FAILED, by=BY_STRIPE) is not None:
                log.warning(
                    "order %s: Stripe now has %s of it refunded, not all; refund the rest from the order's page",
                    order_id,
                    format_money(order.refunded_cents, order.currency),
                )
        elif total is Total.OLDER:
            log.info("charge.refunded %s is older than what order %s knows; nothing to do", event.id, order_id)
        return Applied()
    if event.type == REFUND_FAILED:
        order_id = _refunded_order(event.object)
        if order_id is None:  # a refund made in Stripe's dashboard of a payment that is not an order's
            log.info("refund.failed %s names no order of this shop; nothing to do", event.id)
            return Applied()
        refund_id = _text(event.object.get("id"))
        if refund_id is None:
            return Applied(refused="This refund.failed names no refund (re_…), so it cannot be told from another.")
        order = lifecycle.lock(order_id)
        # The money is the shopper's no more: it comes off what was refunded, once per refund.
        failed_amount = _amount(event.object.get("amount")) or 0
        refund_created = _time(event.object.get("created"))
        failure = stripe_refunds.refund_failed(order, refund_id, failed_amount, refund_created, event.created)
        if failure is Failure.REPEATED:
            log.info("refund.failed %s: refund %s of order %s was told before", event.id, refund_id, order_id)
            return Applied()
        refunds.mark_failed(order.id, refund_id)
        if failure is Failure.SUPERSEDED:  # a later refund's total is what the order stands on
            log.info("refund.failed %s: order %s knows a newer total already", event.id, order_id)
        elif lifecycle.take_if_allowed(order, Move.REFUND_FAILED, by=BY_STRIPE) is not None:
            # Stripe's failure_reason is a code (expired_or_canceled_card, lost_or_stolen_card): no personal data.
            log.warning(
                "order %s: Stripe could not refund the payment (%s); refund it again from the order's page",
                order_id,
                _text(event.object.get("failure_reason")) or "no reason given",
            )
        return Applied()
    if event.type in HANDLED:
        return apply_session(event.object, event.type)
    return Applied()
