"""`flask sync-clerk status`: how far apart Clerk and the mirror are, compared by id. Writes nothing.

Equal counts can hide one user missing and another extra, so every Clerk user is listed (one call
per 500) and previewed against the mirror in read-only transactions; the live users of the mirror
the listing did not contain are then asked for one by one (shop.clerk_user.fetch), as the sync
would before tombstoning them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from shop import mirror
from shop.clerk.api import ClerkAPI, ClerkAPIError
from shop.clerk.users import NotAClerkUser, UserSnapshot
from shop.clerk_user import fetch, read_only
from shop.extensions import db
from shop.models import User
from shop.sync.listing import DEFAULT_MAX_TOMBSTONES, PAGE_SIZE, Listing, Progress, chunks


class SeenSet:
    """The ids a listing met, in memory (`SeenIds`)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def add(self, ids: list[str]) -> int:
        before = len(self.ids)
        self.ids.update(ids)
        return len(self.ids) - before


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
    seen = SeenSet()
    listing = Listing(api, seen, progress=progress)
    for chunk in chunks(listing.snapshots(), PAGE_SIZE):
        _classify(chunk, report)
    report.clerk_count = listing.clerk_count
    if listing.error:
        report.errors.append(listing.error)
    if listing.unparsable:
        report.errors.append(f"{listing.unparsable} users in Clerk's listing could not be read.")
    report.complete = listing.complete and not report.errors
    if listing.complete:
        missing = sorted(local_live_ids() - seen.ids)
        if len(missing) > max_checks:
            report.unconfirmed = missing
        else:
            for position, clerk_id in enumerate(missing):
                try:
                    snapshot = fetch(api, clerk_id)
                except ClerkAPIError as exc:
                    report.unconfirmed.extend(missing[position:])
                    report.errors.append(f"Checking {clerk_id}, missing from the listing, failed: {exc}")
                    break
                except NotAClerkUser as exc:
                    report.errors.append(f"Clerk's answer for {clerk_id} is not a usable user: {exc}.")
                    continue
                if snapshot is None:
                    report.gone_from_clerk.append(clerk_id)
                else:
                    _classify([snapshot], report)
    report.api_calls = api.calls - calls_before
    return report


def _classify(snapshots: list[UserSnapshot], report: DriftReport) -> None:
    try:
        read_only()
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
