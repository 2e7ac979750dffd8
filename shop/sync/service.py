"""Bring the mirror back to exactly what Clerk holds, and measure how far apart they are.

The listing pages through `GET /users` oldest first, so users who sign up while it runs only
append at the end. Users go to the mirror a batch at a time through `mirror.apply_snapshots`
(the same rules as webhooks: Clerk's `updated_at` decides, tombstones stay, roles untouched).

A listing can shift while it runs (a deletion moves every later user one place up, so one is
skipped), so a live local user missing from the listing is only tombstoned once
`GET /users/{id}` answers 404; if it answers with the user, the user is applied instead. An
incomplete listing tombstones nothing. A listing that would make many users disappear at
once (a secret key for another Clerk instance, say) is refused above `max_tombstones`.

Every batch commits on its own: a sync that stops half-way leaves correct data behind. One
sync at a time: a session-level PostgreSQL advisory lock, held on its own connection.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from shop import mirror
from shop.clerk.api import ClerkAPI, ClerkAPIError
from shop.clerk.users import NotAClerkUser, UserSnapshot, clerk_user_id, parse_user
from shop.database import MAX_ERROR_LENGTH, describe_error, session_engine
from shop.extensions import db
from shop.models import SyncRun, User

log = logging.getLogger(__name__)

PAGE_SIZE = 500  # Clerk's largest page
DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 1000  # each batch holds one advisory lock per e-mail until it commits
DEFAULT_MAX_TOMBSTONES = 1000
SYNC_LOCK_KEY = 0x73796E63_636C726B  # "sync" "clrk": the session-level advisory lock of a running sync


class SyncAlreadyRunning(Exception):
    pass


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, listed: int) -> None: ...


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


class Listing:
    """Every Clerk user, oldest first, one page at a time; knows whether it reached the end.

    It ends at a page shorter than PAGE_SIZE, or at a full page that reaches the count Clerk
    gave at the start (saving a round trip for an empty page). A user created after that last
    page is not in the listing: if a webhook brought it in, the missing-user check applies it.
    """

    def __init__(self, api: ClerkAPI, *, progress: Progress | None = None, page_size: int = PAGE_SIZE):
        self.api = api
        self.progress = progress
        self.page_size = page_size
        self.clerk_count: int | None = None
        self.seen: set[str] = set()
        self.pages = 0
        self.listed = 0
        self.unparsable = 0  # users that could not be read (each one a failure)
        self.unidentified = 0  # of those, without even an id: then nobody can be tombstoned
        self.complete = False
        self.error: str | None = None

    def snapshots(self) -> Iterator[UserSnapshot]:
        try:
            self.clerk_count = self.api.count_users()
        except ClerkAPIError as exc:
            self.error = str(exc)
            return
        if self.progress:
            self.progress.start(self.clerk_count)
        offset = 0
        while True:
            try:
                page = self.api.list_users(limit=self.page_size, offset=offset, order_by="created_at")
            except ClerkAPIError as exc:
                self.error = f"The listing stopped after {offset} of {self.clerk_count} users: {exc}"
                return
            self.pages += 1
            self.listed += len(page)
            known = len(self.seen) + self.unidentified
            for user in page:
                snapshot = self._parse(user)
                if snapshot is not None:
                    yield snapshot
            if self.progress:
                self.progress.advance(len(page))
            offset += len(page)
            if len(page) < self.page_size or offset >= self.clerk_count:
                self.complete = self.unidentified == 0
                return
            if len(self.seen) + self.unidentified == known:
                self.error = (
                    f"Clerk's listing repeated users already listed at offset {offset - len(page)}; "
                    "the listing is not reliable, so nothing was tombstoned."
                )
                return

    def _parse(self, user: object) -> UserSnapshot | None:
        try:
            snapshot = parse_user(user)
        except NotAClerkUser as exc:
            self.unparsable += 1
            raw_id = user.get("id") if isinstance(user, dict) else None
            try:
                self.seen.add(clerk_user_id(raw_id))  # it exists in Clerk: never tombstone it
            except NotAClerkUser:
                self.unidentified += 1
            log.warning("Clerk user %s skipped: %s", raw_id if isinstance(raw_id, str) else "?", exc)
            return None
        self.seen.add(snapshot.clerk_id)
        return snapshot


def _chunks(snapshots: Iterable[UserSnapshot], size: int) -> Iterator[list[UserSnapshot]]:
    chunk: list[UserSnapshot] = []
    for snapshot in snapshots:
        chunk.append(snapshot)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _read_only() -> None:
    """Make the transaction that is starting read-only: PostgreSQL itself then refuses any write."""
    db.session.execute(text("SET TRANSACTION READ ONLY"))


def _apply(snapshots: list[UserSnapshot], *, dry_run: bool) -> dict[str, mirror.Change]:
    """One batch, in its own transaction: applied and committed, or (dry run) previewed and rolled back."""
    try:
        if dry_run:
            _read_only()
            return mirror.preview_snapshots(db.session.connection(), snapshots)
        changes = mirror.apply_snapshots(db.session.connection(), snapshots)
        db.session.commit()
        return changes
    finally:
        db.session.rollback()


def local_live_ids() -> set[str]:
    try:
        return set(db.session.scalars(select(User.clerk_id).where(User.deleted_at.is_(None))))
    finally:
        db.session.rollback()


def mirror_counts() -> tuple[int, int]:
    """(live users, tombstones) in the mirror."""
    try:
        live, tombstones = db.session.execute(
            select(
                func.count().filter(User.deleted_at.is_(None)),
                func.count().filter(User.deleted_at.is_not(None)),
            )
        ).one()
        return live, tombstones
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
) -> SyncReport:
    """List every Clerk user into the mirror, then tombstone those Clerk confirms gone.

    The caller holds `sync_lock()`. With `dry_run`, every transaction is read-only.
    """
    report = SyncReport(dry_run=dry_run)
    started_at, started, calls_before = datetime.now(UTC), time.monotonic(), api.calls
    listing = Listing(api, progress=progress)
    try:
        for chunk in _chunks(listing.snapshots(), batch_size):
            report.count(_apply(chunk, dry_run=dry_run).values())
        if listing.error:
            report.errors.append(listing.error)
        if listing.unidentified:
            report.errors.append(f"{listing.unidentified} users in Clerk's listing had no id.")
        if listing.complete:
            _tombstone_the_missing(api, listing.seen, report, dry_run=dry_run, max_tombstones=max_tombstones)
        else:
            report.errors.append("The listing did not complete, so no user was tombstoned.")
    except SQLAlchemyError as exc:
        db.session.rollback()
        report.errors.append(
            f"The database failed ({describe_error(exc)}); what was committed before it is kept and correct."
        )
    report.clerk_count, report.listed, report.pages = listing.clerk_count, listing.listed, listing.pages
    report.failed += listing.unparsable
    report.complete = listing.complete and not report.errors
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
    api: ClerkAPI, seen: set[str], report: SyncReport, *, dry_run: bool, max_tombstones: int
) -> None:
    missing = sorted(local_live_ids() - seen)
    report.missing = len(missing)
    if len(missing) > max_tombstones:
        report.failed += len(missing)
        report.errors.append(
            f"{len(missing)} live users of the mirror are not in Clerk's listing, more than --max-tombstones "
            f"({max_tombstones}); is CLERK_SECRET_KEY the key of this shop's Clerk instance? Nothing was "
            "tombstoned: check, then run again with a higher --max-tombstones."
        )
        return
    for position, clerk_id in enumerate(missing):
        try:
            change, _ = _sync_one(api, clerk_id, dry_run=dry_run)
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


def _sync_one(api: ClerkAPI, clerk_id: str, *, dry_run: bool) -> tuple[mirror.Change | None, bool]:
    """Fetch one user and apply it; Clerk's 404 tombstones the mirror's row. Returns (change, in Clerk).

    The change is None when neither Clerk nor the mirror has the user: no row is invented for an
    id that may be a typo.
    """
    user = api.get_user(clerk_id)
    if user is not None:
        snapshot = parse_user(user)
        if snapshot.clerk_id != clerk_id:
            raise NotAClerkUser(f"Clerk answered with another user, {snapshot.clerk_id}")
        return _apply([snapshot], dry_run=dry_run).get(clerk_id, mirror.Change.UNCHANGED), True
    try:
        if dry_run:
            _read_only()
        deleted_at = db.session.execute(select(User.deleted_at).where(User.clerk_id == clerk_id)).first()
        if deleted_at is None:
            return None, False
        if deleted_at[0] is not None:
            return mirror.Change.ALREADY_DELETED, False
        if dry_run:
            return mirror.Change.TOMBSTONED, False
        change = mirror.apply_deletion(db.session.connection(), clerk_id)
        db.session.commit()
        return change, False
    finally:
        db.session.rollback()


def sync_user(api: ClerkAPI, clerk_id: str, *, dry_run: bool = False) -> tuple[mirror.Change | None, bool]:
    """`flask sync-clerk user`: one id through the same path as the full sync; (change, in Clerk)."""
    return _sync_one(api, clerk_user_id(clerk_id), dry_run=dry_run)


@dataclass
class DriftReport:
    clerk_count: int | None = None
    mirror_live: int = 0
    mirror_tombstones: int = 0
    complete: bool = False
    missing_locally: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    gone_from_clerk: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)  # not in the listing, not checked one by one
    tombstoned_but_in_clerk: list[str] = field(default_factory=list)
    in_sync: int = 0
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def drift(self) -> int | None:
        return None if self.clerk_count is None else self.clerk_count - self.mirror_live

    @property
    def drifted(self) -> bool:
        """Users differ, by id: missing, stale, or live here but not in Clerk. (A tombstone of a user
        Clerk still lists is reported, not counted: tombstones are final, so no sync changes it.)"""
        return bool(self.missing_locally or self.stale or self.gone_from_clerk or self.unconfirmed)


def status(api: ClerkAPI, *, max_checks: int = DEFAULT_MAX_TOMBSTONES, progress: Progress | None = None) -> DriftReport:
    """Who differs between Clerk and the mirror, compared by id (equal counts can hide one user
    missing and another extra). Lists every Clerk user, one call per 500; every transaction is read-only."""
    report = DriftReport()
    calls_before = api.calls
    report.mirror_live, report.mirror_tombstones = mirror_counts()
    listing = Listing(api, progress=progress)
    for chunk in _chunks(listing.snapshots(), PAGE_SIZE):
        _classify(chunk, report)
    report.clerk_count = listing.clerk_count
    if listing.error:
        report.errors.append(listing.error)
    if listing.unparsable:
        report.errors.append(f"{listing.unparsable} users in Clerk's listing could not be read.")
    report.complete = listing.complete and not report.errors
    if listing.complete:
        missing = sorted(local_live_ids() - listing.seen)
        if len(missing) > max_checks:
            report.unconfirmed = missing
        else:
            for position, clerk_id in enumerate(missing):
                try:
                    user = api.get_user(clerk_id)
                except ClerkAPIError as exc:
                    report.unconfirmed.extend(missing[position:])
                    report.errors.append(f"Checking {clerk_id}, missing from the listing, failed: {exc}")
                    break
                if user is None:
                    report.gone_from_clerk.append(clerk_id)
                else:
                    try:
                        _classify([parse_user(user)], report)
                    except NotAClerkUser as exc:
                        report.errors.append(f"Clerk's answer for {clerk_id} is not a usable user: {exc}.")
    report.api_calls = api.calls - calls_before
    return report


def _classify(snapshots: list[UserSnapshot], report: DriftReport) -> None:
    try:
        _read_only()
        changes = mirror.preview_snapshots(db.session.connection(), snapshots)
        tombstones = set(
            db.session.scalars(
                select(User.clerk_id).where(User.clerk_id.in_(list(changes)), User.deleted_at.is_not(None))
            )
        )
    finally:
        db.session.rollback()
    for clerk_id, change in changes.items():
        if change == mirror.Change.CREATED:
            report.missing_locally.append(clerk_id)
        elif change == mirror.Change.UPDATED:
            report.stale.append(clerk_id)
        elif clerk_id in tombstones:
            report.tombstoned_but_in_clerk.append(clerk_id)
        else:
            report.in_sync += 1
