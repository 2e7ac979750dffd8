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

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from shop import mirror
from shop.clerk.events import USER_DELETED, ClerkEvent
from shop.extensions import db
from shop.models import WebhookEvent, WebhookStatus

log = logging.getLogger(__name__)

SOURCE = "clerk"
MAX_ERROR_LENGTH = 2000


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


def _claim(svix_id: str, event_type: str | None, user_id: str | None, payload: Any) -> int | None:
    """Insert the event as `received`, or take over a `failed` one; None if it is already done."""
    statement = insert(WebhookEvent).values(
        source=SOURCE,
        svix_id=svix_id,
        type=event_type,
        clerk_user_id=user_id,
        status=WebhookStatus.RECEIVED,
        payload=payload,
    )
    stored = WebhookEvent.__table__.c
    statement = statement.on_conflict_do_update(
        constraint="uq_webhook_events_source_svix_id",
        set_={
            "status": WebhookStatus.RECEIVED,
            "attempts": stored.attempts + 1,
            "type": statement.excluded.type,
            "clerk_user_id": statement.excluded.clerk_user_id,
            "payload": statement.excluded.payload,
            "error": None,
        },
        where=stored.status == WebhookStatus.FAILED,
    ).returning(stored.id)
    return db.session.execute(statement).scalar()


def _apply(event: ClerkEvent) -> mirror.Change | None:
    if event.snapshot is not None:
        return mirror.apply_snapshot(event.snapshot)
    if event.type == USER_DELETED and event.user_id:
        return mirror.apply_deletion(event.user_id)
    return None


def process(svix_id: str, event: ClerkEvent, payload: Any) -> Outcome:
    """Record and apply one event; commits on success, rolls back and re-raises on failure."""
    try:
        event_id = _claim(svix_id, event.type, event.user_id, payload)
        if event_id is None:
            db.session.rollback()
            return Outcome.DUPLICATE
        change = _apply(event)
        status = WebhookStatus.PROCESSED if event.is_handled else WebhookStatus.IGNORED
        db.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id)
            .values(status=status, processed_at=func.now(), error=None)
        )
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    if change is not None:
        log.debug("mirror %s: %s", event.user_id, change)
    return Outcome.PROCESSED if event.is_handled else Outcome.IGNORED


def describe_error(exc: BaseException) -> str:
    """The error as stored for operators: the driver's message, not SQLAlchemy's SQL dump."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        # Only PostgreSQL's primary message: its DETAIL can quote the row, e-mail included.
        diag = getattr(exc.orig, "diag", None)
        message = getattr(diag, "message_primary", None) or (str(exc.orig).splitlines() or [""])[0]
        text = f"{type(exc.orig).__name__}: {message}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text.strip()[:MAX_ERROR_LENGTH]


def record_failure(svix_id: str, event_type: str | None, user_id: str | None, payload: Any, error: str) -> bool:
    """Best effort, in its own transaction: mark the delivery failed unless it already succeeded."""
    statement = insert(WebhookEvent).values(
        source=SOURCE,
        svix_id=svix_id,
        type=event_type,
        clerk_user_id=user_id,
        status=WebhookStatus.FAILED,
        payload=payload,
        error=error[:MAX_ERROR_LENGTH],
    )
    stored = WebhookEvent.__table__.c
    statement = statement.on_conflict_do_update(
        constraint="uq_webhook_events_source_svix_id",
        set_={"error": statement.excluded.error, "attempts": stored.attempts + 1},
        where=stored.status == WebhookStatus.FAILED,
    )
    try:
        db.session.execute(statement)
        db.session.commit()
        return True
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.error("could not record failed webhook svix_id=%s: %s", svix_id, describe_error(exc))
        return False
