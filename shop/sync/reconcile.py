"""`flask sync-clerk sync`: bring the mirror back to exactly what Clerk holds.

Users go to the mirror a batch at a time through `mirror.apply_snapshots` (the same rules as
webhooks: Clerk's `updated_at` decides, tombstones stay, roles untouched). Every batch commits on
its own: a sync that stops half-way leaves correct data behind.

A listing can shift while it runs (a deletion moves every later user one place up, so one is
skipped), so a live local user missing from the listing is only tombstoned once
`GET /users/{id}` answers 404 (shop.clerk_user); if it answers with the user, the user is applied
instead. An incomplete listing tombstones nothing. A listing that would make many users disappear
at once (a secret key for another Clerk instance, say) is refused above `max_tombstones`.

Memory does not grow with the number of users: the ids the listing met are staged in a temporary
table (`SeenTable`, filled with COPY a page at a time), and the live users it missed are found by
one anti-join in PostgreSQL. A temporary table lives in one PostgreSQL session, so it is held on
a direct connection, as the sync's lock is: behind a transaction-mode pooler, each transaction
may run on another server connection. One sync at a time: a session-level advisory lock.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import psycopg
from sqlalchemy import ARRAY, Connection, Text, bindparam, column, exists, func, select, table, text
from sqlalchemy.exc import SQLAlchemyError

from shop import mirror
from shop.clerk.api import ClerkAPI, ClerkAPIError
from shop.clerk.users import NotAClerkUser, UserSnapshot
from shop.clerk_user import read_only, sync_user
from shop.database import MAX_ERROR_LENGTH, describe_error, session_engine
from shop.extensions import db
from shop.models import SyncRun, User
from shop.sync.listing import DEFAULT_MAX_TOMBSTONES, Listing, Progress, chunks

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
ANALYZE_AFTER = 10_000  # user rows written before the sync refreshes the statistics of `users` (Statistics)
MAX_BATCH_SIZE = 1000  # each batch holds one advisory lock per e-mail until it commits
SYNC_LOCK_KEY = 0x73796E63_636C726B  # "sync" "clrk": the session-level advisory lock of a running sync


class SyncAlreadyRunning(Exception):
    pass


@contextmanager
def sync_lock() -> Iterator[None]:
    """Hold the sync's advisory lock on a dedicated connection, or raise SyncAlreadyRunning.

    Session-level, so the batches can commit while it is held; released explicitly, and by
    PostgreSQL itself if this process dies. Behind a pooler in transaction mode (PgBouncer,
    Neon's `-pooler` host) a session lock would not hold: it is taken through DATABASE_URL_DIRECT.
    """
    connection = session_engine("the sync's lock").connect()
    locked = False
    try:
        locked = bool(connection.scalar(select(func.pg_try_advisory_lock(SYNC_LOCK_KEY))))
        connection.commit()  # the lock outlives the transaction; do not sit idle in one
        if not locked:
            raise SyncAlreadyRunning(
                "Another sync is running (it holds the sync-clerk lock in PostgreSQL); "
                "wait for it to finish, then run this one again."
            )
        yield
    finally:
        try:
            if locked:
                connection.scalar(select(func.pg_advisory_unlock(SYNC_LOCK_KEY)))
                connection.commit()
        except SQLAlchemyError:
            connection.invalidate()  # closing the session releases the lock
        finally:
            connection.close()


_SEEN = table("sync_seen", column("clerk_id", Text))
_ADD_DISTINCT = text(
    "INSERT INTO pg_temp.sync_seen (clerk_id) SELECT DISTINCT unnest(CAST(:ids AS text[])) ON CONFLICT DO NOTHING"
).bindparams(bindparam("ids", type_=ARRAY(Text)))


class SeenTable:
    """The ids a listing met, in a temporary table of a direct PostgreSQL session (`SeenIds`).

    Each page is one COPY in its own transaction; a page that repeats an id already staged (the
    listing shifted, or Clerk repeated itself) is added again without the repeats. `missing`
    compares it with the mirror in one anti-join. Dropped when the sync ends (the connection
    returns to a pool).
    """

    def __init__(self, connection: Connection):
        self.connection = connection
        with connection.begin():
            connection.execute(text("DROP TABLE IF EXISTS pg_temp.sync_seen"))
            connection.execute(text("CREATE TEMPORARY TABLE sync_seen (clerk_id text PRIMARY KEY)"))

    def add(self, ids: list[str]) -> int:
        if not ids:
            return 0
        try:
            driver = cast(psycopg.Connection, self.connection.connection.driver_connection)  # psycopg's, for COPY
            with (
                self.connection.begin(),
                driver.cursor() as cursor,
                cursor.copy("COPY pg_temp.sync_seen (clerk_id) FROM STDIN") as copy,
            ):
                for clerk_id in ids:
                    copy.write_row((clerk_id,))
            return len(ids)
        except psycopg.errors.UniqueViolation:  # the page repeats an id: its COPY was rolled back
            with self.connection.begin():
                return self.connection.execute(_ADD_DISTINCT, {"ids": ids}).rowcount

    def missing(self, limit: int) -> tuple[int, list[str]]:
        """(how many live users of the mirror the listing did not meet, the first `limit` of their ids by id)."""
        users = User.__table__.c
        query = (
            select(users.clerk_id, func.count().over().label("total"))
            .where(users.deleted_at.is_(None), ~exists().where(_SEEN.c.clerk_id == users.clerk_id))
            .order_by(users.clerk_id)
            .limit(limit + 1)  # at least one row, which carries the total
        )
        with self.connection.begin():
            self.connection.execute(text("ANALYZE pg_temp.sync_seen"))  # no autovacuum for temporary tables
            rows = self.connection.execute(query).all()
        return (rows[0].total if rows else 0), [row.clerk_id for row in rows[:limit]]

    def drop(self) -> None:
        with self.connection.begin():
            self.connection.execute(text("DROP TABLE IF EXISTS pg_temp.sync_seen"))


@contextmanager
def seen_table() -> Iterator[SeenTable]:
    """A SeenTable on a connection of its own, from DATABASE_URL_DIRECT behind a pooler."""
    connection = session_engine("the sync's staging table").connect()
    try:
        staged = SeenTable(connection)
        yield staged
        staged.drop()
    except BaseException:
        connection.invalidate()  # the session ends here, and its temporary table with it
        raise
    finally:
        connection.close()


class Statistics:
    """Keeps PostgreSQL's statistics of `users` current while a sync fills the mirror.

    A first sync into an empty mirror writes every row in one run. The mirror's statements are
    prepared and planned from the table's statistics; planned while the table was empty, the
    e-mail hand-over scans the whole table for each batch, and the run slows with the square of
    the users (1,000,000 users: 3,050 rows/s, then 7,950 after one ANALYZE; bench/README.md).
    Autovacuum would analyse it, but it can be off or behind; so the sync analyses `users`
    itself each time it has written a tenth of what the table held (and at least `minimum`
    rows) since it last did. ANALYZE reads a sample (30,000 rows): about 0.1 s.
    """

    def __init__(self, minimum: int):
        self.minimum = minimum
        self.written_since = 0
        self.rows_then = 0

    def count(self, changes: Iterable[mirror.Change]) -> None:
        self.written_since += sum(change in (mirror.Change.CREATED, mirror.Change.UPDATED) for change in changes)
        if self.written_since >= max(self.minimum, self.rows_then // 10):
            db.session.execute(text("ANALYZE users"))
            self.rows_then = db.session.execute(
                text("SELECT reltuples::bigint FROM pg_class WHERE oid = 'users'::regclass")
            ).scalar_one()
            db.session.commit()
            self.written_since = 0


def _apply(snapshots: list[UserSnapshot], *, dry_run: bool) -> dict[str, mirror.Change]:
    """One batch, in its own transaction: applied and committed, or (dry run) previewed and rolled back."""
    try:
        if dry_run:
            read_only()
            return mirror.preview_snapshots(db.session.connection(), snapshots)
        changes = mirror.apply_snapshots(db.session.connection(), snapshots)
        db.session.commit()
        return changes
    finally:
        db.session.rollback()


@dataclass
class SyncReport:
    dry_run: bool = False
    clerk_count: int | None = None
    listed: int = 0
    pages: int = 0
    complete: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    tombstoned: int = 0
    failed: int = 0
    missing: int = 0  # live local users absent from the listing, checked one by one
    seconds: float = 0.0
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Consistent: the whole listing was read, nothing failed."""
        return self.complete and self.failed == 0 and not self.errors

    def count(self, changes: Iterable[mirror.Change]) -> None:
        counts = Counter(changes)
        self.created += counts[mirror.Change.CREATED]
        self.updated += counts[mirror.Change.UPDATED]
        self.unchanged += counts[mirror.Change.UNCHANGED] + counts[mirror.Change.ALREADY_DELETED]
        self.tombstoned += counts[mirror.Change.TOMBSTONED]

    def summary(self) -> str:
        return (
            f"created={self.created} updated={self.updated} unchanged={self.unchanged} "
            f"tombstoned={self.tombstoned} failed={self.failed} seconds={self.seconds:.1f} api_calls={self.api_calls}"
        )


def sync(
    api: ClerkAPI,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    max_tombstones: int = DEFAULT_MAX_TOMBSTONES,
    progress: Progress | None = None,
    analyze_after: int = ANALYZE_AFTER,
) -> SyncReport:
    """List every Clerk user into the mirror, then tombstone those Clerk confirms gone.

    The caller holds `sync_lock()`. With `dry_run`, every transaction on the mirror is read-only.
    """
    report = SyncReport(dry_run=dry_run)
    started_at, started, calls_before = datetime.now(UTC), time.monotonic(), api.calls
    listing: Listing | None = None
    try:
        with seen_table() as seen:
            listing = Listing(api, seen, progress=progress)
            statistics = Statistics(minimum=analyze_after)
            for chunk in chunks(listing.snapshots(), batch_size):
                changes = _apply(chunk, dry_run=dry_run).values()
                report.count(changes)
                if not dry_run:
                    statistics.count(changes)
            if listing.error:
                report.errors.append(listing.error)
            if listing.unidentified:
                report.errors.append(f"{listing.unidentified} users in Clerk's listing had no id.")
            if listing.complete:
                _tombstone_the_missing(api, seen, report, dry_run=dry_run, max_tombstones=max_tombstones)
            else:
                report.errors.append("The listing did not complete, so no user was tombstoned.")
    except (SQLAlchemyError, psycopg.Error) as exc:
        db.session.rollback()
        report.errors.append(
            f"The database failed ({describe_error(exc)}); what was committed before it is kept and correct."
        )
    if listing is not None:
        report.clerk_count, report.listed, report.pages = listing.clerk_count, listing.listed, listing.pages
        report.failed += listing.unparsable
    report.complete = listing is not None and listing.complete and not report.errors
    report.seconds = time.monotonic() - started
    report.api_calls = api.calls - calls_before
    if not dry_run:
        _record_run(report, started_at)
    return report


def _record_run(report: SyncReport, started_at: datetime) -> None:
    """Leave the run in sync_runs for /metrics and the dashboard; a failure to do so fails nothing else."""
    try:
        db.session.add(
            SyncRun(
                started_at=started_at,
                ok=report.ok,
                clerk_count=report.clerk_count,
                listed=report.listed,
                created=report.created,
                updated=report.updated,
                tombstoned=report.tombstoned,
                failed=report.failed,
                error=report.errors[0][:MAX_ERROR_LENGTH] if report.errors else None,
            )
        )
        db.session.commit()
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.error("the sync's result could not be recorded: %s", describe_error(exc))


def _tombstone_the_missing(
    api: ClerkAPI, seen: SeenTable, report: SyncReport, *, dry_run: bool, max_tombstones: int
) -> None:
    report.missing, missing = seen.missing(max_tombstones)
    if report.missing > max_tombstones:
        report.failed += report.missing
        report.errors.append(
            f"{report.missing} live users of the mirror are not in Clerk's listing, more than --max-tombstones "
            f"({max_tombstones}); is CLERK_SECRET_KEY the key of this shop's Clerk instance? Nothing was "
            "tombstoned: check, then run again with a higher --max-tombstones."
        )
        return
    for position, clerk_id in enumerate(missing):
        try:
            change, _ = sync_user(api, clerk_id, dry_run=dry_run)
        except ClerkAPIError as exc:
            # The API is failing (retries are spent): do not grind through the rest one by one.
            report.failed += len(missing) - position
            report.errors.append(f"Checking {clerk_id}, missing from the listing, failed: {exc}")
            return
        except NotAClerkUser as exc:
            report.failed += 1
            report.errors.append(f"Clerk's answer for {clerk_id} is not a usable user: {exc}.")
            continue
        if change is not None:
            report.count([change])
