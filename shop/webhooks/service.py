"""Record a verified delivery and apply it to the mirror, in one transaction.

`webhook_events` has one row per (source, svix_id). Claiming that row and applying the
event commit together, so the log and the effect can never disagree. A duplicate blocks on
the first delivery's uncommitted row and then finds it done; only a `failed` row can be
claimed again (Svix's retry, or `flask webhooks replay`).
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from sqlalchemy import Connection, Executable, bindparam, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from shop import metrics, mirror
from shop.clerk.events import USER_DELETED, ClerkEvent, NotAClerkEvent, parse_event, storable
from shop.database import MAX_ERROR_LENGTH, compiled_once, describe_error
from shop.extensions import db
from shop.models import WebhookEvent, WebhookStatus

log = logging.getLogger(__name__)

SOURCE = "clerk"


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


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


def _claim(conn: Connection, svix_id: str, event: ClerkEvent, payload: Any) -> int | None:
    """Insert the event with its final status, or take over a `failed` one; None if it is already done."""
    status = WebhookStatus.PROCESSED if event.is_handled else WebhookStatus.IGNORED
    return claim(conn, SOURCE, svix_id, event.type, status, payload, clerk_user_id=event.user_id)


def claim(
    conn: Connection,
    source: str,
    event_id: str,
    event_type: str | None,
    status: WebhookStatus,
    payload: Any,
    *,
    clerk_user_id: str | None = None,
) -> int | None:
    """The claim of any source's event (Clerk's svix-id, Stripe's evt_ id), in the caller's transaction."""
    parameters = {
        "source": source,
        "svix_id": event_id,
        "type": event_type,
        "clerk_user_id": clerk_user_id,
        "status": status.value,
        "payload": payload,
    }
    return conn.execute(_CLAIM, parameters).scalar()


def _apply(conn: Connection, event: ClerkEvent) -> mirror.Change | None:
    if event.snapshot is not None:
        return mirror.apply_snapshot(conn, event.snapshot)
    if event.type == USER_DELETED and event.user_id:
        return mirror.apply_deletion(conn, event.user_id)
    return None


def _process_once(svix_id: str, event: ClerkEvent, payload: Any) -> Outcome:
    # A Core connection rather than the ORM session: nothing here loads objects, and the session's
    # bookkeeping cost a third of a delivery's CPU.
    with db.engine.connect() as conn, conn.begin() as transaction:
        if _claim(conn, svix_id, event, payload) is None:
            transaction.rollback()
            return Outcome.DUPLICATE
        change = _apply(conn, event)
    if change is not None:
        log.debug("mirror %s: %s", event.user_id, change)
    return Outcome.PROCESSED if event.is_handled else Outcome.IGNORED


def process(svix_id: str, event: ClerkEvent, payload: Any) -> Outcome:
    """Record and apply one event in one transaction: committed together, or rolled back and re-raised."""
    return mirror.retry_email_conflicts(lambda: _process_once(svix_id, event, payload))


class ProcessingFailed(Exception):
    """Processing raised; the delivery is recorded as `failed` (when the database allowed it).
    The message is the error as stored."""


def process_or_record_failure(svix_id: str, event: ClerkEvent, payload: Any) -> Outcome:
    """`process`, and on failure the delivery recorded as `failed` with its error, then ProcessingFailed."""
    outcome = "failed"
    try:
        outcome = process(svix_id, event, payload)
        return outcome
    except Exception as exc:
        error = describe_error(exc)
        record_failure(svix_id, event.type, event.user_id, payload, error)
        raise ProcessingFailed(error) from exc
    finally:
        metrics.record_webhook_delivery(SOURCE, event.type, outcome)


def replay_event(svix_id: str, payload: Any) -> str:
    """Re-process a stored delivery through the same path as a live one; returns what happened."""
    try:
        event = parse_event(payload)
    except NotAClerkEvent as exc:
        return f"still not a Clerk event: {exc}"
    try:
        return process_or_record_failure(svix_id, event, payload).value
    except ProcessingFailed as exc:
        return f"failed again: {exc}"


def record_failure(
    svix_id: str, event_type: str | None, user_id: str | None, payload: Any, error: str, *, source: str = SOURCE
) -> bool:
    """Best effort, in its own transaction: mark the delivery failed unless it already succeeded.

    What is recorded is what PostgreSQL can store (`storable`): a payload refused for a NUL or a lone
    surrogate is kept with those characters replaced, so the failure itself can be recorded.
    """
    statement = insert(WebhookEvent).values(
        source=source,
        svix_id=svix_id,
        type=storable(event_type),
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
        log.error("could not record failed webhook svix_id=%s: %s", svix_id, describe_error(exc))
        return False
