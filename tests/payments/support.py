"""Stripe-shaped events for the suite, signed with the stripe library's own scheme."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import stripe

from tests.conftest import STRIPE_WEBHOOK_SECRET


def checkout_session(order_id: int, session_id: str, *, order_key: str | None = None, **fields: Any) -> dict[str, Any]:
    """A Checkout Session as Stripe's OpenAPI fixture shapes it (the fields this shop reads, and a few more)."""
    return {
        "id": session_id,
        "object": "checkout.session",
        "amount_subtotal": 1000,
        "amount_total": 1000,
        "client_reference_id": str(order_id),
        "currency": "eur",
        "expires_at": int(time.time()) + 1800,
        "livemode": False,
        "metadata": {"order_id": str(order_id), "order_key": order_key},
        "mode": "payment",
        "payment_intent": f"pi_test_{order_id}",
        "payment_status": "paid",
        "status": "complete",
        **fields,
    }


def charge(order_id: int, *, refunded: bool = True, order_key: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"ch_test_{order_id}",
        "object": "charge",
        "amount": 1000,
        "amount_refunded": 1000 if refunded else 300,
        "currency": "eur",
        "metadata": {"order_id": str(order_id), "order_key": order_key} if order_key else {},
        "paid": True,
        "payment_intent": f"pi_test_{order_id}",
        "refunded": refunded,
        "status": "succeeded",
        **fields,
    }


def refund(order_id: int, *, order_key: str | None = None, **fields: Any) -> dict[str, Any]:
    """A refund the bank refused (Stripe's test card 4000 0000 0000 5126 does this), as `refund.failed` carries it."""
    return {
        "id": f"re_test_{order_id}",
        "object": "refund",
        "amount": 1000,
        "charge": f"ch_test_{order_id}",
        "currency": "eur",
        "failure_reason": "expired_or_canceled_card",
        "metadata": {"order_id": str(order_id), "order_key": order_key} if order_key else {},
        "payment_intent": f"pi_test_{order_id}",
        "status": "failed",
        **fields,
    }


def stripe_event(
    kind: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None
) -> dict[str, Any]:
    """The event as Stripe sends it, made now or at `created` (Unix seconds)."""
    return {
        "id": event_id or f"evt_test_{uuid.uuid4().hex}",
        "object": "event",
        "api_version": stripe.api_version,
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def stripe_headers(body: str | bytes, *, secret: str = STRIPE_WEBHOOK_SECRET, timestamp: int | None = None):
    text = body.decode() if isinstance(body, bytes) else body
    return {
        "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(text, secret, timestamp=timestamp),
        "Content-Type": "application/json; charset=utf-8",
    }


def post_event(client, payload: Any, **sign: Any):
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    return client.post("/api/webhooks/stripe", data=body, headers=stripe_headers(body, **sign))
