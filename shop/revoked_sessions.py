"""Clerk sessions that ended before their last token did: revoked, ended or removed.

Clerk's "sign out of this device", a revocation from the dashboard or the Backend API, and a plain
sign-out reach the shop as `session.revoked`, `session.ended` and `session.removed` webhooks
(shop.webhooks.clerk). A token already minted for such a session stays valid until it expires
(about 60 s), and verified tokens are cached per process (shop.clerk.tokens), so the session id is
written here and the signed-in user's per-request read (shop.auth.signed_in) refuses a token whose
`sid` is listed, in the same SELECT: every worker, on the very next request.

Small and bounded: a row only matters until the session's last token lapses, so it is kept one day
past the moment Clerk ended the session (never longer than a day past its arrival, whatever the
event says), then pruned, at most PRUNE_BATCH rows at a time, by the next revocation that arrives.
The table holds about one day of revocations.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Index, String, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from shop.database import compiled_once
from shop.extensions import Model

KEPT_FOR = timedelta(days=1)  # far past any session token's lifetime (60 s) and any clock's drift
PRUNE_BATCH = 100  # rows a revocation deletes at most: its cost stays small whatever piled up


class RevokedSession(Model):
    """A Clerk session that must sign nobody in any more, by its id (the tokens' `sid`)."""

    __tablename__ = "revoked_sessions"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    clerk_user_id: Mapped[str | None] = mapped_column(String(64))  # may not be mirrored (yet): fine
    status: Mapped[str] = mapped_column(String(16))  # revoked, ended or removed: the event that said so
    keep_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_revoked_sessions_keep_until", "keep_until"),)


def _record_statement():
    # Sessions never come back to life: the first word on a session id stays (a duplicate, a replay
    # or a later event of another kind changes nothing).
    return (
        insert(RevokedSession)
        .values(
            session_id=bindparam("session_id"),
            clerk_user_id=bindparam("clerk_user_id"),
            status=bindparam("status"),
            keep_until=bindparam("keep_until"),
        )
        .on_conflict_do_nothing(index_elements=["session_id"])
    )


_RECORD = compiled_once(_record_statement)
_table = RevokedSession.__table__.c
# SKIP LOCKED: two deliveries pruning at once never wait for each other.
_PRUNE = delete(RevokedSession).where(
    _table.session_id.in_(
        select(_table.session_id)
        .where(_table.keep_until < func.now())
        .limit(PRUNE_BATCH)
        .with_for_update(skip_locked=True)
    )
)


def keep_until(ended_at_ms: int | None) -> datetime:
    """When a session Clerk ended at `ended_at_ms` (its `updated_at`; None: now) stops mattering."""
    now = time.time()
    ended = now if ended_at_ms is None else min(max(ended_at_ms / 1000, 0), now)
    return datetime.fromtimestamp(ended, UTC) + KEPT_FOR


def record(conn: Connection, session_id: str, clerk_user_id: str | None, status: str, ended_at_ms: int | None) -> int:
    """Refuse `session_id` from now on (idempotent); prune what lapsed. Rows pruned, for logs and tests."""
    conn.execute(
        _RECORD,
        {
            "session_id": session_id,
            "clerk_user_id": clerk_user_id,
            "status": status,
            "keep_until": keep_until(ended_at_ms),
        },
    )
    return prune(conn)


def prune(conn: Connection) -> int:
    """Delete at most PRUNE_BATCH rows whose sessions can no longer have a live token."""
    return conn.execute(_PRUNE).rowcount
