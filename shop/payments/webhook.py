"""`POST /api/webhooks/stripe`: Stripe's signed events.

The signature is checked on the raw bytes by `stripe.Webhook.construct_event`, against each
configured secret in turn (two while a secret is rolled), with Stripe's default tolerance of
five minutes on the signed timestamp. Answers as for Clerk's webhook: 400 for a missing or bad
signature or a body that is not an event, 200 processed|duplicate|ignored, 500 when processing
failed (so Stripe retries), 503 with no secret configured, 413 over the size limit.
"""

from __future__ import annotations

import json
import logging

import stripe
from flask import current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from shop.extensions import csrf
from shop.payments import bp, events
from shop.webhooks.service import record_failure

log = logging.getLogger("shop.payments.webhook")

TOLERANCE_SECONDS = stripe.Webhook.DEFAULT_TOLERANCE


def _answer(http_status: int, **body: str):
    return jsonify(body), http_status


def verify(raw: bytes, header: str, secrets: list[str]) -> None:
    """Raise stripe.SignatureVerificationError unless one secret signed these bytes recently."""
    try:
        body = raw.decode("utf-8")  # Stripe signs UTF-8 JSON; anything else cannot be its body
    except UnicodeDecodeError:
        raise stripe.SignatureVerificationError("body is not UTF-8", header) from None
    last_error: Exception | None = None
    for secret in secrets:
        try:
            stripe.Webhook.construct_event(body, header, secret, tolerance=TOLERANCE_SECONDS)
            return
        except stripe.SignatureVerificationError as exc:
            last_error = exc
        except Exception:
            return
    raise last_error or stripe.SignatureVerificationError("no secret", header)


@bp.post("/api/webhooks/stripe")
@csrf.exempt
def stripe_webhook():
    secrets = current_app.config["STRIPE_WEBHOOK_SECRETS"]
    if not secrets:
        log.error("stripe webhook refused: STRIPE_WEBHOOK_SECRET is not set")
        return _answer(503, error="Webhook signing secret is not configured")
    request.max_content_length = current_app.config["WEBHOOK_MAX_BYTES"]
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _answer(413, error="Payload too large")
    header = request.headers.get("Stripe-Signature", "")
    if not header:
        return _answer(400, error="Missing Stripe-Signature header")
    try:
        verify(raw, header, secrets)
    except stripe.SignatureVerificationError:
        log.warning("stripe webhook refused: invalid signature")
        return _answer(400, error="Invalid signature")

    try:
        if b"\\u0000" in raw:  # PostgreSQL's JSONB cannot hold it: such a body could never be stored
            raise ValueError("NUL character")
        payload = json.loads(raw)
    except ValueError:
        return _answer(400, error="Body is not JSON")
    try:
        event = events.parse(payload)
    except events.NotAStripeEvent as exc:
        event_id = events.event_id_of(payload)
        if event_id:
            record_failure(event_id, None, None, payload, f"Not a Stripe event: {exc}", source=events.SOURCE)
        return _answer(400, error=f"Not a Stripe event: {exc}")

    try:
        outcome = events.process_or_record_failure(event, payload)
    except events.ProcessingFailed as exc:
        log.error("stripe webhook %s (%s) failed: %s", event.id, event.type, exc)
        return _answer(500, error="Processing failed; the delivery will be retried")
    log.info("stripe webhook %s type=%s outcome=%s", event.id, event.type, outcome)
    return _answer(200, status=outcome)
