"""The single write path for Clerk-owned columns of `users`.

Webhooks, first sign-in and `flask sync-clerk` all come through here, so the rules hold
whichever path a change arrives by:

- upsert by `clerk_id`, applied only if Clerk's `updated_at` is not older than the stored one;
- a deletion leaves a tombstone (personal data erased, cart emptied) that nothing brings back,
  even when it arrives before the creation;
- e-mail is unique among live users: the newest claim wins, the other row gives it up and is
  marked for re-sync; accounts are never merged;
- `role` is never written from Clerk data.

Every rule is a condition inside one SQL statement, so concurrent writers cannot interleave
between a read and a write. The caller owns the transaction.
"""

from __future__ import annotations

import enum
import logging

from sqlalchemy import and_, exists, func, literal_column, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from shop.clerk.users import UserSnapshot
from shop.extensions import db
from shop.models import User

log = logging.getLogger(__name__)

EMAIL_CONFLICT_RETRIES = 5
EMAIL_LOCK_SPACE = 0x6D61696C  # first key of the two-key advisory lock: "mail"
_CLERK_COLUMNS = ("email", "first_name", "last_name", "image_url")


class Change(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # same data, or stale, or the user is a tombstone
    TOMBSTONED = "tombstoned"
    ALREADY_DELETED = "already_deleted"


def _snapshot_applies(snapshot: UserSnapshot):
    """SQL truth: no row for this Clerk id, or a live one not newer than the snapshot."""
    own = User.__table__.alias("own")
    return ~exists().where(
        own.c.clerk_id == snapshot.clerk_id,
        or_(own.c.deleted_at.is_not(None), own.c.clerk_updated_at > snapshot.updated_at),
    )


def _release_email(snapshot: UserSnapshot) -> None:
    """Another live row holding this e-mail gives it up, if this snapshot is going to apply."""
    if snapshot.email is None:
        return
    # Claims of one e-mail queue behind each other until commit. Without this, a claimer's
    # UPDATE cannot see a rival's uncommitted row and its INSERT would hit the unique index.
    db.session.execute(select(func.pg_advisory_xact_lock(EMAIL_LOCK_SPACE, func.hashtext(snapshot.email.lower()))))
    db.session.execute(
        update(User)
        .where(
            func.lower(User.email) == snapshot.email.lower(),
            User.clerk_id != snapshot.clerk_id,
            User.deleted_at.is_(None),
            _snapshot_applies(snapshot),
        )
        .values(email=None, needs_resync=True, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )


def _upsert(snapshot: UserSnapshot) -> Change:
    values = {
        "clerk_id": snapshot.clerk_id,
        "email": snapshot.email,
        "first_name": snapshot.first_name,
        "last_name": snapshot.last_name,
        "image_url": snapshot.image_url,
        "clerk_updated_at": snapshot.updated_at,
    }
    statement = insert(User).values(values)
    new = statement.excluded
    stored = User.__table__.c
    statement = statement.on_conflict_do_update(
        index_elements=[stored.clerk_id],
        set_={
            **{column: new[column] for column in _CLERK_COLUMNS},
            "clerk_updated_at": new.clerk_updated_at,
            "needs_resync": False,
            "updated_at": func.now(),
        },
        where=and_(
            stored.deleted_at.is_(None),
            or_(stored.clerk_updated_at.is_(None), stored.clerk_updated_at <= new.clerk_updated_at),
            # Writing identical data would only churn rows (and a re-sync would rewrite everything).
            or_(
                stored.needs_resync,
                tuple_(*(stored[c] for c in _CLERK_COLUMNS)).is_distinct_from(
                    tuple_(*(new[c] for c in _CLERK_COLUMNS))
                ),
            ),
        ),
    ).returning(stored.id, literal_column("xmax = 0").label("inserted"))  # xmax is 0 on a fresh insert
    row = db.session.execute(statement).first()
    if row is None:
        return Change.UNCHANGED
    return Change.CREATED if row.inserted else Change.UPDATED


def apply_snapshot(snapshot: UserSnapshot) -> Change:
    """Bring the user's row up to `snapshot`, within the caller's transaction."""
    for attempt in range(1, EMAIL_CONFLICT_RETRIES + 1):
        # A concurrent writer can claim the same e-mail between our release and our upsert;
        # the unique index catches it and we go again from a savepoint.
        savepoint = db.session.begin_nested()
        try:
            _release_email(snapshot)
            change = _upsert(snapshot)
        except IntegrityError as exc:
            savepoint.rollback()
            if "uq_users_live_email" not in str(exc.orig) or attempt == EMAIL_CONFLICT_RETRIES:
                raise
            log.info("e-mail claimed concurrently for %s, retrying (%d)", snapshot.clerk_id, attempt)
            continue
        savepoint.commit()
        return change
    raise AssertionError("unreachable")


def apply_deletion(clerk_id: str) -> Change:
    """Tombstone the user: keep the row for orders' foreign keys, erase personal data.

    A deletion that arrives before the creation inserts the tombstone, so the late creation
    finds it and changes nothing.
    """
    statement = insert(User).values(clerk_id=clerk_id, deleted_at=func.now())
    stored = User.__table__.c
    statement = statement.on_conflict_do_update(
        index_elements=[stored.clerk_id],
        set_={
            "deleted_at": func.now(),
            **{column: None for column in _CLERK_COLUMNS},
            "needs_resync": False,
            "updated_at": func.now(),
        },
        where=stored.deleted_at.is_(None),
    ).returning(stored.id)
    row = db.session.execute(statement).first()
    return Change.ALREADY_DELETED if row is None else Change.TOMBSTONED


def live_users():
    """Deleted users are not counted as users anywhere."""
    return select(User).where(User.deleted_at.is_(None))
