"""`POST /api/webhooks/clerk`: every answer and status code as in the contract."""

from __future__ import annotations

import logging
import time

from flask import current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from shop.clerk import signatures
from shop.clerk.events import NotAClerkEvent, decode_body, event_type, parse_event
from shop.extensions import csrf
from shop.webhooks import bp
from shop.webhooks.service import ProcessingFailed, process_or_record_failure, record_failure

log = logging.getLogger("shop.webhooks")


def _answer(http_status: int, **body: str):
    return jsonify(body), http_status


def _body_within(limit: int) -> bytes | None:
    """The raw body, or None when it is over `limit` bytes, chunked or not.

    Werkzeug stops reading a chunked body at the limit without saying whether more followed (the
    signature check would then fail on a silently truncated body), so one byte more is allowed:
    reaching it means the body was too large.
    """
    request.max_content_length = limit + 1
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return None
    return raw if len(raw) <= limit else None


@bp.post("/api/webhooks/clerk")
@csrf.exempt
def clerk_webhook():
    started = time.perf_counter()
    secrets = current_app.config["CLERK_WEBHOOK_SECRETS"]
    if not secrets:
        log.error("webhook refused: CLERK_WEBHOOK_SECRET is not set")
        return _answer(503, error="Webhook signing secret is not configured")

    raw = _body_within(current_app.config["WEBHOOK_MAX_BYTES"])
    if raw is None:
        return _answer(413, error="Payload too large")

    try:
        svix_id = signatures.verify(raw, request.headers, secrets)
    except signatures.MissingHeaders:
        return _answer(400, error="Missing svix headers")
    except signatures.InvalidSignature:
        log.warning("webhook refused: invalid signature svix_id=%s", request.headers.get("svix-id", "")[:100])
        return _answer(400, error="Invalid signature")

    def done(outcome: str, kind: str | None, user_id: str | None) -> None:
        ms = (time.perf_counter() - started) * 1000
        log.info("webhook svix_id=%s type=%s user=%s outcome=%s ms=%.1f", svix_id, kind, user_id, outcome, ms)

    try:
        payload = decode_body(raw)
    except ValueError:
        record_failure(svix_id, None, None, None, "The body is not JSON.")
        done("rejected", None, None)
        return _answer(400, error="Body is not JSON")

    try:
        event = parse_event(payload)
    except NotAClerkEvent as exc:
        record_failure(svix_id, event_type(payload), None, payload, str(exc))
        done("rejected", event_type(payload), None)
        return _answer(400, error=f"Not a Clerk event: {exc}")

    try:
        outcome = process_or_record_failure(svix_id, event, payload)
    except ProcessingFailed as exc:
        log.error("webhook svix_id=%s processing failed: %s", svix_id, exc)
        done("failed", event.type, event.user_id)
        return _answer(500, error="Processing failed; the delivery will be retried")
    done(outcome, event.type, event.user_id)
    return _answer(200, status=outcome)
