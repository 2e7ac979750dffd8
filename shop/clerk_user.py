"""One Clerk user, fetched from the Backend API and written to the mirror: the one way to do it.

The first sign-in before the webhook (shop.auth.provisioning), the repair of a stale row on sign-in
(shop.auth.resync), `flask sync-clerk user` and the full sync's check of users missing from its
listing (shop.sync) all come through here, with one set of rules:

- the id must be a storable Clerk id before anything is asked (`clerk_user_id`);
- Clerk's answer must be the user asked for: an answer about another id, or one that cannot be
  read, is refused (NotAClerkUser) and nothing is written;
- the user goes through shop.mirror with the webhooks' rules (Clerk's `updated_at` decides,
  tombstones stay tombstones, e-mails are handed over, `role` is never written), in one
  transaction, run again when a concurrent claim of the same e-mail aborts it;
- Clerk's 404 (`resource_not_found`) means Clerk has no such user: a live row is tombstoned, a
  tombstone stays one, and an id the mirror never held gets no row (it may be a typo), unless
  the caller knows the id is real (`tombstone_unknown`: a session token Clerk signed names it).

The drift check only reads: it uses `fetch` alone.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import func, select, text, update

from shop import mirror
from shop.clerk.api import ClerkAPI
from shop.clerk.users import NotAClerkUser, UserSnapshot, clerk_user_id, parse_user
from shop.extensions import db
from shop.models import User


class Outcome(NamedTuple):
    change: mirror.Change | None  # None: neither Clerk nor the mirror has the user, and no row was invented
    in_clerk: bool  # False: Clerk answered 404


def fetch(api: ClerkAPI, clerk_id: str) -> UserSnapshot | None:
    """Clerk's user `clerk_id` (`GET /users/{id}`), or None when Clerk answers 404.

    Raises ClerkAPIError when Clerk cannot be asked, NotAClerkUser when the id is not a Clerk id
    or the answer is not a usable user, or is another user.
    """
    clerk_id = clerk_user_id(clerk_id)
    user = api.get_user(clerk_id)
    if user is None:
        return None
    snapshot = parse_user(user)
    if snapshot.clerk_id != clerk_id:
        raise NotAClerkUser(f"Clerk answered with another user, {snapshot.clerk_id}")
    return snapshot


def read_only() -> None:
    """Make the transaction that is starting read-only: PostgreSQL itself then refuses any write."""
    db.session.execute(text("SET TRANSACTION READ ONLY"))


def sync_user(
    api: ClerkAPI,
    clerk_id: str,
    *,
    dry_run: bool = False,
    tombstone_unknown: bool = False,
    mark_provisioned: bool = False,
) -> Outcome:
    """Fetch one user and bring the mirror's row to it; Clerk's 404 tombstones the row.

    `dry_run`: one read-only transaction, reporting what would change. `tombstone_unknown`: a 404
    for an id the mirror never held inserts a tombstone instead of nothing (the first sign-in: the
    id comes from a session token Clerk signed, so the user existed; the tombstone signs the token
    out without asking Clerk again, and a late `user.created` finds it and changes nothing).
    `mark_provisioned`: a row this creates records it in `provisioned_at`, in the same transaction.
    """
    snapshot = fetch(api, clerk_id)  # the id is checked before Clerk is asked

    def transaction() -> mirror.Change | None:
        try:
            if dry_run:
                read_only()
            if snapshot is None:
                change = _gone(clerk_id, dry_run=dry_run, tombstone_unknown=tombstone_unknown)
            elif dry_run:
                change = mirror.preview_snapshots(db.session.connection(), [snapshot])[clerk_id]
            else:
                change = mirror.apply_snapshot(db.session.connection(), snapshot)
            if change == mirror.Change.CREATED and mark_provisioned and not dry_run:
                db.session.execute(update(User).where(User.clerk_id == clerk_id).values(provisioned_at=func.now()))
            if not dry_run:
                db.session.commit()
            return change
        finally:
            db.session.rollback()

    return Outcome(mirror.retry_email_conflicts(transaction), snapshot is not None)


def _gone(clerk_id: str, *, dry_run: bool, tombstone_unknown: bool) -> mirror.Change | None:
    """Clerk answered 404 for `clerk_id`: what becomes of the mirror's row, in the caller's transaction."""
    stored = db.session.execute(select(User.deleted_at).where(User.clerk_id == clerk_id)).first()
    if stored is None and not tombstone_unknown:
        return None
    if stored is not None and stored.deleted_at is not None:
        return mirror.Change.ALREADY_DELETED
    if dry_run:
        return mirror.Change.TOMBSTONED
    return mirror.apply_deletion(db.session.connection(), clerk_id)
