"""One inbox for every signed webhook: Clerk's (through Svix) and Stripe's.

Each source supplies only what is its own (`Source`): how its signature is checked, how a verified
body becomes an event, and what the event does. Everything else happens here, once, the same way
for both:

1. a missing secret answers 503; a body over WEBHOOK_MAX_BYTES answers 413, chunked or not;
2. the signature is checked on the raw bytes, and *any* exception from the check refuses the
   delivery (400): a verifier that raises on odd bytes has not verified them;
3. the body is decoded once (`decode_json`: bounded nesting, no NUL, no NaN), then parsed once by
   the source; a body that is not the source's event answers 400 and is recorded as failed;
4. the event is claimed in `webhook_events` (one row per source and id) and applied in the same
   transaction, so the history and the effect commit together: a duplicate finds the claim taken,
   and only a `failed` row is taken over (the sender's retry, or `flask webhooks replay`);
5. an event the source refuses (`Applied.refused`: a payment that does not match its order) is
   recorded as `failed` with the sentence saying why, in that same transaction; it answers 200
   `refused`, since sending it again cannot change the answer;
6. processing that raises is rolled back, recorded as `failed` with its error, and answered 500
   so the sender retries;
7. every delivery is counted in `shop_webhook_deliveries_total{source, type, outcome}`.

Replays (`flask webhooks replay`, the admin) go through `replay()`, which finds the source in
the registry the sources fill in (`register`), so this module imports none of them.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from flask import current_app, jsonify, request
from sqlalchemy import Connection, Executable, bindparam, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge

from shop import metrics
from shop.database import MAX_ERROR_LENGTH, compiled_once, describe_error
from shop.extensions import db
from shop.models import WebhookEvent, WebhookStatus
from shop.payloads import NotJSON, decode_json, storable

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    REFUSED = "refused"  # verified, but the source would not apply it (recorded as failed, with why)


# What settles a delivery: a replay ending in one of these succeeded (a refused one is still failed).
OUTCOMES = frozenset({Outcome.PROCESSED.value, Outcome.DUPLICATE.value, Outcome.IGNORED.value})


class MissingSignature(Exception):
    """The signature headers are absent: the message says which (answered 400)."""


class NotAnEvent(ValueError):
    """A verified body that is not one of the source's events; the message says why."""


@dataclass(frozen=True, slots=True)
class Event:
    """A verified, parsed delivery: its id (Svix's svix-id, Stripe's evt_ id), type, the Clerk user it
    is about (for the history's column), whether the source acts on this type, and the source's own
    parsed form for `apply`."""

    id: str
    type: str
    handled: bool
    data: Any
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying did: `refused` says why the source would not act on it (recorded, answered 200
    `refused`); `after_commit` runs once the transaction is committed (an e-mail to send)."""

    refused: str | None = None
    after_commit: Callable[[], None] | None = None


class Source(Protocol):
    name: str  # `webhook_events.source`, the metrics label
    title: str  # for messages: "Clerk", "Stripe"
    secrets_setting: str  # the config key holding the list of signing secrets

    def verify(self, raw: bytes, headers: Headers, secrets: list[str]) -> str | None:
        """The delivery's id if the header carries one (Svix), else None (Stripe: the body's evt_ id).
        Raises MissingSignature, or anything else for a signature that does not verify."""

    def parse(self, payload: Any, delivery_id: str | None) -> Event:
        """The event, or NotAnEvent."""

    def failed_id(self, payload: Any, delivery_id: str | None) -> str | None:
        """The id to record a body that failed `parse` under, if there is a usable one."""

    def unit_of_work(self) -> AbstractContextManager[Connection]:
        """The transaction the claim and the effect share, as a connection (Core, or the ORM session's)."""

    def run(self, attempt: Callable[[], Outcome]) -> Outcome:
        """Run one delivery's transaction, again if the source knows a conflict that a retry resolves."""

    def apply(self, conn: Connection, event: Event) -> Applied:
        """The event's effect, in the claim's transaction."""


_SOURCES: dict[str, Source] = {}


def register(source: Source) -> Source:
    _SOURCES[source.name] = source
    return source


def sources() -> tuple[str, ...]:
    return tuple(sorted(_SOURCES))


# --- the HTTP side ------------------------------------------------------------------------------------------


def _answer(http_status: int, **body: str) -> tuple[Any, int]:
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


class InvalidSignature(Exception):
    """The delivery is not signed by a configured secret; the message names what the verifier raised."""


def _verified(source: Source, raw: bytes, secrets: list[str]) -> str | None:
    """The delivery id from the source's check. MissingSignature passes through; anything else the
    verifier raises is InvalidSignature: a verifier that raised has verified nothing."""
    try:
        return source.verify(raw, request.headers, secrets)
    except MissingSignature:
        raise
    except Exception as exc:
        raise InvalidSignature(type(exc).__name__) from exc


def receive(source_name: str) -> tuple[Any, int]:
    """The whole answer to one delivery of `source_name` (the route's body)."""
    source = _SOURCES[source_name]
    started = time.perf_counter()
    secrets = current_app.config[source.secrets_setting]
    if not secrets:
        log.error("%s webhook refused: its signing secret is not set", source.title)
        return _answer(503, error="Webhook signing secret is not configured")
    raw = _body_within(current_app.config["WEBHOOK_MAX_BYTES"])
    if raw is None:
        return _answer(413, error="Payload too large")
    try:
        delivery_id = _verified(source, raw, secrets)
    except MissingSignature as exc:
        return _answer(400, error=str(exc))
    except InvalidSignature as exc:
        log.warning("%s webhook refused: invalid signature (%s)", source.title, exc)
        return _answer(400, error="Invalid signature")

    def done(outcome: str, event: Event | None) -> None:
        ms = (time.perf_counter() - started) * 1000
        kind, user = (event.type, event.user_id) if event else (None, None)
        log.info(
            "%s webhook id=%s type=%s user=%s outcome=%s ms=%.1f",
            source.name,
            event.id if event else delivery_id,
            kind,
            user,
            outcome,
            ms,
        )

    try:
        payload = decode_json(raw)
    except NotJSON as exc:
        if delivery_id:
            record_failure(source.name, delivery_id, None, None, None, f"The body is not JSON: {exc}.")
        done("rejected", None)
        return _answer(400, error="Body is not JSON")
    try:
        event = source.parse(payload, delivery_id)
    except NotAnEvent as exc:
        failed_id = source.failed_id(payload, delivery_id)
        if failed_id:
            kind = payload.get("type") if isinstance(payload, dict) and isinstance(payload.get("type"), str) else None
            record_failure(source.name, failed_id, kind, None, payload, f"Not a {source.title} event: {exc}")
        done("rejected", None)
        return _answer(400, error=f"Not a {source.title} event: {exc}")
    try:
        outcome = process_or_record_failure(source, event, payload)
    except ProcessingFailed as exc:
        log.error("%s webhook %s (%s) failed: %s", source.title, event.id, event.type, exc)
        done("failed", event)
        return _answer(500, error="Processing failed; the delivery will be retried")
    done(outcome, event)
    return _answer(200, status=outcome)


# --- recording and applying ---------------------------------------------------------------------------------


def _claim_statement() -> Executable:
    """One statement that claims the row and writes its final status.

    Nobody sees the row before the transaction commits, and if applying the event fails the whole
    transaction (row included) rolls back, so there is no need to write `received` first and the
    final status in a second statement. Only a `failed` row is taken over.
    """
    statement = insert(WebhookEvent).values(
        source=bindparam("source"),
        svix_id=bindparam("svix_id"),
        type=bindparam("type"),
        clerk_user_id=bindparam("clerk_user_id"),
        status=bindparam("status"),
        payload=bindparam("payload"),
        processed_at=func.now(),
    )
    stored, excluded = WebhookEvent.__table__.c, statement.excluded
    return statement.on_conflict_do_update(
        constraint="uq_webhook_events_source_svix_id",
        set_={
            **{name: excluded[name] for name in ("status", "type", "clerk_user_id", "payload", "processed_at")},
            "attempts": stored.attempts + 1,
            "error": None,
        },
        where=stored.status == WebhookStatus.FAILED,
    ).returning(stored.id)


_CLAIM = compiled_once(_claim_statement)


def claim(conn: Connection, source: str, event: Event, payload: Any) -> int | None:
    """Insert the event with its final status, or take over a `failed` one; None if it is already done."""
    status = WebhookStatus.PROCESSED if event.handled else WebhookStatus.IGNORED
    parameters = {
        "source": source,
        "svix_id": event.id,
        "type": event.type,
        "clerk_user_id": event.user_id,
        "status": status.value,
        "payload": payload,
    }
    return conn.execute(_CLAIM, parameters).scalar()


def _mark_refused(conn: Connection, row_id: int, reason: str) -> None:
    conn.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == row_id)
        .values(status=WebhookStatus.FAILED, error=reason[:MAX_ERROR_LENGTH])
    )


def process(source: Source, event: Event, payload: Any) -> Outcome:
    """Record and apply one event in one transaction: committed together, or rolled back and re-raised."""

    def attempt() -> Outcome:
        with source.unit_of_work() as conn:
            row_id = claim(conn, source.name, event, payload)
            if row_id is None:
                return Outcome.DUPLICATE
            applied = source.apply(conn, event)
            if applied.refused is not None:
                _mark_refused(conn, row_id, applied.refused)
        if applied.after_commit is not None:
            applied.after_commit()
        if applied.refused is not None:
            log.warning("%s event %s (%s) refused: %s", source.title, event.id, event.type, applied.refused)
            return Outcome.REFUSED
        return Outcome.PROCESSED if event.handled else Outcome.IGNORED

    return source.run(attempt)


class ProcessingFailed(Exception):
    """Processing raised; the delivery is recorded as `failed` (when the database allowed it).
    The message is the error as stored."""


def process_or_record_failure(source: Source, event: Event, payload: Any) -> Outcome:
    """`process`, and on failure the delivery recorded as `failed` with its error, then ProcessingFailed."""
    outcome = "failed"
    try:
        outcome = process(source, event, payload)
        return outcome
    except Exception as exc:
        error = describe_error(exc)
        record_failure(source.name, event.id, event.type, event.user_id, payload, error)
        raise ProcessingFailed(error) from exc
    finally:
        metrics.record_webhook_delivery(source.name, event.type, outcome)


def replay(source_name: str, event_id: str, payload: Any) -> str:
    """Re-process a stored event through its source's live path; an Outcome value, or what went wrong."""
    source = _SOURCES.get(source_name)
    if source is None:
        return f"not replayed: no webhook source {source_name!r} in this shop"
    try:
        event = source.parse(payload, event_id)
    except NotAnEvent as exc:
        return f"still not a {source.title} event: {exc}"
    if event.id != event_id:
        return "failed again: the stored payload belongs to another event"
    try:
        return process_or_record_failure(source, event, payload).value
    except ProcessingFailed as exc:
        return f"failed again: {exc}"


def record_failure(
    source: str, event_id: str, event_type: str | None, user_id: str | None, payload: Any, error: str
) -> bool:
    """Best effort, in its own transaction: mark the delivery failed unless it already succeeded.

    What is recorded is what PostgreSQL can store (`storable`): a payload refused for a NUL or a lone
    surrogate is kept with those characters replaced, so the failure itself can be recorded.
    """
    statement = insert(WebhookEvent).values(
        source=source,
        svix_id=storable(event_id)[:255],
        type=storable(event_type)[:100] if event_type else None,
        clerk_user_id=storable(user_id),
        status=WebhookStatus.FAILED,
        payload=storable(payload),
        error=storable(error[:MAX_ERROR_LENGTH]),
    )
    stored = WebhookEvent.__table__.c
    statement = statement.on_conflict_do_update(
        constraint="uq_webhook_events_source_svix_id",
        set_={"error": statement.excluded.error, "attempts": stored.attempts + 1},
        where=stored.status == WebhookStatus.FAILED,
    )
    try:
        with db.engine.begin() as conn:
            conn.execute(statement)
        return True
    except SQLAlchemyError as exc:
        log.error("could not record failed %s webhook %s: %s", source, event_id[:100], describe_error(exc))
        return False
