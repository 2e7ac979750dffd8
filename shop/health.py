"""The mirror's health (and the outbox's) as the database records it: read by `/metrics` and by the
admin dashboard.

Everything here comes from PostgreSQL, not from a process's memory, so every gunicorn worker
(and every instance) answers with the same figures, and they survive restarts:
- the last delivery each webhook source got through (received and processed, or ignored);
- failed deliveries waiting for a replay (Svix's retry or `flask webhooks replay`);
- users that a first sign-in had to create because their webhook had not arrived;
- the last real `flask sync-clerk sync`: when, whether it completed, what it had to repair;
- order e-mails the outbox gave up on, waiting for `flask mail retry`.

Each read is one short query, cheap enough for every scrape. All but one follow an index: the
failed e-mails' count scans the outbox (two rows per order at most; no index covers `failed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, text

# Sources that always get a figure, so an alert has a series to watch before the first delivery.
# Stripe's deliveries share webhook_events with source = 'stripe'.
WEBHOOK_SOURCES = ("clerk", "stripe")
PROVISIONING_WINDOW_HOURS = 24

# Newest first along ix_webhook_events_source_created_at: the first accepted row ends the scan.
_LAST_ACCEPTED = text(
    """
    SELECT created_at FROM webhook_events
    WHERE source = :source AND status IN ('processed', 'ignored')
    ORDER BY created_at DESC LIMIT 1
    """
)
_FAILED = text("SELECT source, count(*) FROM webhook_events WHERE status = 'failed' GROUP BY source")
_PROVISIONED = text(
    "SELECT count(*) FROM users WHERE provisioned_at > now() - make_interval(hours => :hours)"
).bindparams(bindparam("hours", PROVISIONING_WINDOW_HOURS))
_FAILED_MAIL = text("SELECT count(*) FROM mail_outbox WHERE status = 'failed'")
_LAST_SYNC = text(
    """
    SELECT started_at, finished_at, ok, clerk_count, created, updated, tombstoned, failed, error
    FROM sync_runs ORDER BY finished_at DESC LIMIT 1
    """
)


@dataclass(frozen=True)
class WebhookHealth:
    source: str
    last_accepted_at: datetime | None
    failed: int


@dataclass(frozen=True)
class SyncRunSummary:
    started_at: datetime
    finished_at: datetime
    ok: bool
    clerk_count: int | None
    created: int  # missing from the mirror: a user.created that never arrived
    updated: int  # stale in the mirror: a user.updated that never arrived
    tombstoned: int  # gone from Clerk, live in the mirror: a user.deleted that never arrived
    failed: int
    error: str | None

    @property
    def drift(self) -> int:
        return self.created + self.updated + self.tombstoned


@dataclass(frozen=True)
class MirrorHealth:
    checked_at: datetime
    webhooks: dict[str, WebhookHealth]
    provisioned_recently: int  # in the last PROVISIONING_WINDOW_HOURS
    last_sync: SyncRunSummary | None
    failed_mail: int = 0  # outbox rows given up on (status failed)


def read(conn: Connection) -> MirrorHealth:
    """The figures, read in the caller's (read-only) transaction."""
    failed = dict(conn.execute(_FAILED).tuples().all())
    sources = [*WEBHOOK_SOURCES, *sorted(set(failed) - set(WEBHOOK_SOURCES))]
    webhooks = {
        source: WebhookHealth(source, conn.execute(_LAST_ACCEPTED, {"source": source}).scalar(), failed.get(source, 0))
        for source in sources
    }
    last_sync = conn.execute(_LAST_SYNC).first()
    return MirrorHealth(
        checked_at=conn.execute(text("SELECT now()")).scalar_one(),
        webhooks=webhooks,
        provisioned_recently=conn.execute(_PROVISIONED).scalar_one(),
        last_sync=SyncRunSummary(**last_sync._mapping) if last_sync else None,
        failed_mail=conn.execute(_FAILED_MAIL).scalar_one(),
    )
