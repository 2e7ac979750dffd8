"""The single write path for Clerk-owned columns of `users`.

Webhooks, first sign-in and `flask sync-clerk` all come through here, so the rules hold
whichever path a change arrives by:

- upsert by `clerk_id`, applied only if Clerk's `updated_at` is not older than the stored one;
- a deletion leaves a tombstone (personal data erased, cart emptied) that nothing brings back,
  even when it arrives before the creation; what other packages keep of the user (the store's
  carts and address book) is erased by what they register with `on_tombstone`, in the same
  transaction (this module imports nothing above it);
- e-mail is unique among live users: the newest claim wins, the other row gives it up and is
  marked for re-sync; accounts are never merged. "The same e-mail" means the same `email_key`
  (below), computed here in Python and nowhere else: SQL only compares stored keys;
- an e-mail address with a control character (a line break, a tab, a NUL …) is stored as no
  address, and the rest of the snapshot applies (`storable`): read back into an order e-mail's
  headers it could add some (a `Bcc:`), and no real mailbox has one;
- `role` is never written from Clerk data.

Every rule is a condition inside one SQL statement, so concurrent writers cannot interleave
between a read and a write. The caller owns the transaction and passes its connection; the mirror
is written in SQLAlchemy Core, so a caller with no ORM session (the webhook) pays for none.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TypeVar, overload

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Text,
    Update,
    and_,
    bindparam,
    column,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from shop.clerk.users import FIELD_COLUMNS, FIELDS, UserSnapshot
from shop.database import compiled_once
from shop.models import Role, User

log = logging.getLogger(__name__)

EMAIL_CONFLICT_RETRIES = 5
EMAIL_LOCK_SPACE = 0x6D61696C  # first key of the two-key advisory lock: "mail"
# Every Clerk-owned column: the e-mail (its own rules, below) and shop.clerk.users.FIELDS.
_CLERK_COLUMNS = ("email", "email_key", *FIELD_COLUMNS)
_SNAPSHOT_COLUMNS = ("clerk_id", *_CLERK_COLUMNS, "clerk_updated_at")
T = TypeVar("T")
# C0 and C1 controls (CR, LF, TAB, NUL …), DEL, Unicode's line and paragraph separators, and lone
# surrogates (JSON's "\ud800" escape; no UTF-8 form, so PostgreSQL could not store the row).
_CONTROL_IN_EMAIL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


@overload
def email_key(address: str) -> str: ...
@overload
def email_key(address: None) -> None: ...
def email_key(address: str | None) -> str | None:
    """The form of an e-mail address that uniqueness and every look-up compare.

    Computed in Python only and stored in `users.email_key`, which the unique index covers: PostgreSQL's
    lower() depends on the database's locale and disagreed with Python's (lower('İ') is 'i' under
    glibc, 'i̇' in Python), which let a snapshot pass the mirror's check and then hit the index.
    Addresses that read the same on screen share a key: compatibility forms (fullwidth letters),
    composed or decomposed accents (NFKC), case (Unicode's full lower-case mapping) and invisible
    format characters (zero-width spaces and joiners, bidi marks, soft hyphens). Lower-casing, not
    case folding: `straße` and `strasse` stay two addresses, as IDNA2008 and PRECIS keep them, so two
    real mailboxes never take the address from each other at every sync. NFKC runs again after
    lower-casing, which makes the key idempotent (email_key(email_key(x)) == email_key(x)).

    Changing this function changes stored keys: it needs a migration that recomputes them (0003's).
    """
    if address is None:
        return None
    visible = "".join(char for char in unicodedata.normalize("NFKC", address) if unicodedata.category(char) != "Cf")
    return unicodedata.normalize("NFKC", visible.lower())


def storable(snapshot: UserSnapshot) -> UserSnapshot:
    """`snapshot` as the mirror stores it: an e-mail address with a control character becomes none.

    The user keeps their row and can sign in; only the address is dropped: its `email_key` is NULL
    too, so it claims no address and takes none from another user. Every snapshot comes through here:
    `apply_snapshot`, and the batches' `_latest_per_user` (`apply_snapshots`, `preview_snapshots`).
    The warning names the user, never the address: it is personal data.
    """
    if snapshot.email is None or not _CONTROL_IN_EMAIL.search(snapshot.email):
        return snapshot
    log.warning(
        "user %s: Clerk's e-mail address has a control character (a line break?); stored as none", snapshot.clerk_id
    )
    return dataclasses.replace(snapshot, email=None)


class Change(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # same data, or stale, or the user is a tombstone
    TOMBSTONED = "tombstoned"
    ALREADY_DELETED = "already_deleted"


def _snapshot_applies(
    clerk_id: str | ColumnElement[str], clerk_updated_at: int | ColumnElement[int]
) -> ColumnElement[bool]:
    """SQL truth: a snapshot of `clerk_id` at `clerk_updated_at` applies (so it may take an e-mail):
    its user has no row yet, or a live one not newer. A snapshot's values, or a batch's columns."""
    own = User.__table__.alias("own")
    return ~exists().where(
        own.c.clerk_id == clerk_id,
        or_(own.c.deleted_at.is_not(None), own.c.clerk_updated_at > clerk_updated_at),
    )


def _release_email_statement(
    key: str | ColumnElement[str], clerk_id: str | ColumnElement[str], clerk_updated_at: int | ColumnElement[int]
) -> Update:
    """Another live row holding the e-mail `key` gives it up, if the claim applies.

    The one statement of the hand-over, for one snapshot (values) and for a batch (its columns:
    NULL keys equal nothing, so a snapshot without an e-mail releases none).
    """
    holder = User.__table__.c
    return (
        update(User)
        .where(
            holder.email_key == key,
            holder.clerk_id != clerk_id,
            holder.deleted_at.is_(None),
            _snapshot_applies(clerk_id, clerk_updated_at),
        )
        .values(email=None, email_key=None, needs_resync=True, updated_at=func.now())
    )


def _release_email(conn: Connection, snapshot: UserSnapshot) -> None:
    """Another live row holding this e-mail gives it up, if this snapshot is going to apply."""
    key = email_key(snapshot.email)
    if key is None:
        return
    # Claims of one e-mail queue behind each other until commit. Without this, a claimer's
    # UPDATE cannot see a rival's uncommitted row and its INSERT would hit the unique index.
    conn.execute(select(func.pg_advisory_xact_lock(EMAIL_LOCK_SPACE, func.hashtext(key))))
    conn.execute(_release_email_statement(key, snapshot.clerk_id, snapshot.updated_at))


def _newer_and_different(stored, new):
    """When a snapshot overwrites a stored row: live, not older, and something to write.

    `stored` and `new` are column collections (the table and `excluded`, or a batch's rows).
    """
    return and_(
        stored.deleted_at.is_(None),
        or_(stored.clerk_updated_at.is_(None), stored.clerk_updated_at <= new.clerk_updated_at),
        # Writing identical data would only churn rows (and a re-sync would rewrite everything).
        or_(
            stored.needs_resync,
            tuple_(*(stored[c] for c in _CLERK_COLUMNS)).is_distinct_from(tuple_(*(new[c] for c in _CLERK_COLUMNS))),
        ),
    )


def _on_conflict_update(statement, *also):
    """The upsert's conflict rule, shared by one snapshot and a batch: RETURNING (id, inserted)."""
    new = statement.excluded
    stored = User.__table__.c
    return statement.on_conflict_do_update(
        index_elements=[stored.clerk_id],
        set_={
            **{column: new[column] for column in _CLERK_COLUMNS},
            "clerk_updated_at": new.clerk_updated_at,
            "needs_resync": False,
            "updated_at": func.now(),
        },
        where=and_(_newer_and_different(stored, new), *also),
    ).returning(stored.id, stored.clerk_id, literal_column("xmax = 0").label("inserted"))  # xmax is 0 on insert


def _upsert_statement(*, unless_email_held: bool) -> Executable:
    """The upsert of one snapshot.

    `unless_email_held`: write nothing while another live row holds the e-mail, instead of
    letting the unique index abort the transaction; the caller then hands the address over.
    """
    table = User.__table__.c
    new_row = select(
        *(bindparam(column, type_=table[column].type) for column in _SNAPSHOT_COLUMNS),
        literal(Role.CLIENT, table.role.type),
        false(),
    )
    also = []
    if unless_email_held:
        holder = User.__table__.alias("holder")
        held = exists().where(
            holder.c.email_key == bindparam("email_key"),
            holder.c.clerk_id != bindparam("clerk_id"),
            holder.c.deleted_at.is_(None),
        )
        new_row, also = new_row.where(~held), [~held]
    columns = [*_SNAPSHOT_COLUMNS, "role", "needs_resync"]
    return _on_conflict_update(insert(User).from_select(columns, new_row), *also)


_UPSERT = compiled_once(lambda: _upsert_statement(unless_email_held=False))
_UPSERT_UNLESS_EMAIL_HELD = compiled_once(lambda: _upsert_statement(unless_email_held=True))


def _upsert(conn: Connection, snapshot: UserSnapshot, *, unless_email_held: bool) -> Change | None:
    """CREATED or UPDATED; None if nothing was written (stale, unchanged, a tombstone, or the e-mail held)."""
    values = {
        "clerk_id": snapshot.clerk_id,
        "email": snapshot.email,
        "email_key": email_key(snapshot.email),
        **snapshot.fields,
        "clerk_updated_at": snapshot.updated_at,
    }
    row = conn.execute(_UPSERT_UNLESS_EMAIL_HELD if unless_email_held else _UPSERT, values).first()
    if row is None:
        return None
    return Change.CREATED if row.inserted else Change.UPDATED


def is_email_conflict(exc: BaseException) -> bool:
    """The live-e-mail index refused a write: another transaction claimed the same address concurrently."""
    if not isinstance(exc, IntegrityError):
        return False
    return getattr(getattr(exc.orig, "diag", None), "constraint_name", None) == "uq_users_live_email"


def apply_snapshot(conn: Connection, snapshot: UserSnapshot) -> Change:
    """Bring the user's row up to `snapshot`, within the caller's transaction on `conn`.

    Most snapshots claim an e-mail nobody else holds: one statement, which writes nothing while
    another live row holds the address. Only then is the address handed over: the claim queues
    on the e-mail's advisory lock, the holder gives it up, and the upsert runs again. A stale,
    unchanged or tombstoned snapshot writes no row, so it never takes an e-mail.

    A claim that races another transaction's uncommitted claim of the same address is refused
    by the unique index, which aborts the transaction (IntegrityError, `is_email_conflict`):
    run such a transaction through `retry_email_conflicts`, or `apply_snapshots`, which retries.
    """
    snapshot = storable(snapshot)
    change = _upsert(conn, snapshot, unless_email_held=True)
    if change is not None:
        return change
    if snapshot.email is not None:
        _release_email(conn, snapshot)  # nothing to release when the snapshot is stale, unchanged or tombstoned
        change = _upsert(conn, snapshot, unless_email_held=False)
    return change or Change.UNCHANGED


def is_deadlock(exc: BaseException) -> bool:
    """PostgreSQL broke a deadlock by aborting this transaction (SQLSTATE 40P01). Concurrent upserts of
    one new user can meet so: each inserting into the clerk_id and the live-e-mail unique indexes,
    one waits on the other's clerk_id while the other waits on its e-mail (an `ON CONFLICT` settles
    its arbiter index only)."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) == "40P01"


def retry_email_conflicts(transaction: Callable[[], T]) -> T:
    """Run `transaction` (which begins, writes snapshots and commits, or rolls back on error) again
    while a concurrent claim of the same e-mail aborts it, or a deadlock with one does; the next
    attempt finds the claim committed and hands the address over (or finds the row written). Like
    retrying a serialization failure, as PostgreSQL's documentation asks of both."""
    for attempt in range(1, EMAIL_CONFLICT_RETRIES + 1):
        try:
            return transaction()
        except DBAPIError as exc:
            if not (is_email_conflict(exc) or is_deadlock(exc)) or attempt == EMAIL_CONFLICT_RETRIES:
                raise
            what = "e-mail claimed concurrently" if is_email_conflict(exc) else "deadlock with a concurrent write"
            log.info("%s, running the transaction again (%d)", what, attempt)
    raise AssertionError("unreachable")


def _apply_in_savepoint(conn: Connection, snapshot: UserSnapshot) -> Change:
    """`apply_snapshot` that survives concurrent e-mail claims without aborting the caller's transaction."""

    def in_savepoint() -> Change:
        with conn.begin_nested():  # released on success, rolled back on an error
            return apply_snapshot(conn, snapshot)

    return retry_email_conflicts(in_savepoint)


def _tombstone_statement() -> Executable:
    stored = User.__table__.c
    return (
        insert(User)
        .values(clerk_id=bindparam("clerk_id"), deleted_at=func.now(), role=Role.CLIENT.value, needs_resync=False)
        .on_conflict_do_update(
            index_elements=[stored.clerk_id],
            set_={
                "deleted_at": func.now(),
                "email": None,
                "email_key": None,
                **{field.column: field.erased for field in FIELDS},
                "needs_resync": False,
                "updated_at": func.now(),
            },
            where=stored.deleted_at.is_(None),
        )
        .returning(stored.id)
    )


_TOMBSTONE = compiled_once(_tombstone_statement)


# What a tombstone erases beyond the user's row, registered by the packages that keep personal data
# keyed by user (the store: its carts and address books, shop.store.erasure). The mirror is below
# them and imports none of them; each eraser runs in the tombstone's transaction, on its connection.
Eraser = Callable[[Connection, int], None]
_erasers: list[Eraser] = []


def on_tombstone(eraser: Eraser) -> Eraser:
    """Register `eraser(conn, user_id)`, called in the same transaction each time a user becomes a
    tombstone, whatever the path (webhook, sync, first sign-in). Registering one twice adds it once
    (every app the factory builds registers again). Returns it, so it can decorate."""
    if eraser not in _erasers:
        _erasers.append(eraser)
    return eraser


def erasers() -> tuple[Eraser, ...]:
    return tuple(_erasers)


def apply_deletion(conn: Connection, clerk_id: str) -> Change:
    """Tombstone the user: keep the row for orders' foreign keys, erase personal data (the row's own
    columns here, the rest by the registered erasers, in this transaction).

    A deletion that arrives before the creation inserts the tombstone, so the late creation
    finds it and changes nothing.
    """
    row = conn.execute(_TOMBSTONE, {"clerk_id": clerk_id}).first()
    if row is None:
        return Change.ALREADY_DELETED
    for eraser in _erasers:
        eraser(conn, row.id)
    return Change.TOMBSTONED


def _latest_per_user(snapshots: Iterable[UserSnapshot]) -> list[UserSnapshot]:
    """One snapshot per Clerk id (the newest), sorted by id so concurrent writers lock rows in one order;
    each as `storable` makes it (every batch, applied or previewed, starts here)."""
    latest: dict[str, UserSnapshot] = {}
    for snapshot in map(storable, snapshots):
        kept = latest.get(snapshot.clerk_id)
        if kept is None or snapshot.updated_at >= kept.updated_at:
            latest[snapshot.clerk_id] = snapshot
    return [latest[clerk_id] for clerk_id in sorted(latest)]


def _batch_rows(snapshots: list[UserSnapshot]):
    """The snapshots as a table: `jsonb_to_recordset(:rows) AS batch(clerk_id TEXT, email TEXT, …)`.

    One JSON parameter for the whole batch, each column typed as in `users` (text, boolean, jsonb …).
    Not one array per column: psycopg writes text arrays by escaping every element with a regular
    expression, which cost more than half of a sync's time once each user carried its metadata as
    JSON text (bench/README.md); json's C encoder writes the batch in one pass.
    """
    table = User.__table__.c
    rows = [
        {
            "clerk_id": s.clerk_id,
            "email": s.email,
            "email_key": email_key(s.email),
            **s.fields,
            "clerk_updated_at": s.updated_at,
        }
        for s in snapshots
    ]
    names = ("clerk_id", "email", "email_key", *FIELD_COLUMNS, "clerk_updated_at")
    return (
        func.jsonb_to_recordset(bindparam(None, rows, type_=JSONB))
        .table_valued(*(column(name, table[name].type) for name in names))
        .render_derived(name="batch", with_types=True)
    )


def _lock_emails(conn: Connection, snapshots: list[UserSnapshot]) -> None:
    """The same per-e-mail advisory locks as `_release_email`, all at once and in one order (no deadlock)."""
    keys = sorted({email_key(snapshot.email) for snapshot in snapshots if snapshot.email})
    if keys:
        emails = func.unnest(bindparam("emails", keys, type_=ARRAY(Text))).table_valued("email").render_derived()
        ordered = select(func.hashtext(emails.c.email).label("key")).order_by("key").subquery()
        conn.execute(select(func.count(func.pg_advisory_xact_lock(EMAIL_LOCK_SPACE, ordered.c.key))))


def _apply_batch(conn: Connection, snapshots: list[UserSnapshot]) -> dict[str, Change]:
    """`_release_email` and `_upsert` for many snapshots, in two statements (e-mails unique within the batch)."""
    rows = _batch_rows(snapshots)
    conn.execute(_release_email_statement(rows.c.email_key, rows.c.clerk_id, rows.c.clerk_updated_at))
    statement = insert(User).from_select(_SNAPSHOT_COLUMNS, select(*(rows.c[name] for name in _SNAPSHOT_COLUMNS)))
    written = {row.clerk_id: row.inserted for row in conn.execute(_on_conflict_update(statement))}
    return {
        s.clerk_id: Change.UNCHANGED
        if s.clerk_id not in written
        else (Change.CREATED if written[s.clerk_id] else Change.UPDATED)
        for s in snapshots
    }


def _retryable(exc: DBAPIError) -> bool:
    """A concurrent e-mail claim caught by the unique index, or a deadlock PostgreSQL broke up."""
    if isinstance(exc, IntegrityError):
        return is_email_conflict(exc)
    return getattr(exc.orig, "sqlstate", None) == "40P01"


def apply_snapshots(conn: Connection, snapshots: Iterable[UserSnapshot]) -> dict[str, Change]:
    """Bring many users' rows up to their snapshots, with exactly the rules of `apply_snapshot`.

    Set-based: a few statements for the whole batch instead of three per user. Several
    snapshots of one user count as the newest. A first SELECT drops the snapshots that would
    change nothing (their row is equal, newer, or a tombstone; an equal row already holds its
    e-mail, so nobody else's needs releasing): a re-sync of unchanged users costs one statement.
    Snapshots that claim the same e-mail within the batch go one by one through
    `apply_snapshot`, oldest first, so the newest claim wins as it would by webhooks. If the
    batch meets a concurrent claim or a deadlock, it is undone to a savepoint and applied one
    snapshot at a time. The caller owns the transaction on `conn`.
    """
    latest = _latest_per_user(snapshots)
    if not latest:
        return {}
    keys = {s.clerk_id: email_key(s.email) for s in latest}
    claims = Counter(key for key in keys.values() if key)

    def is_contested(snapshot: UserSnapshot) -> bool:
        key = keys[snapshot.clerk_id]
        return key is not None and claims[key] > 1  # claims counts no empty key

    uncontested = [s for s in latest if not is_contested(s)]
    contested = sorted(filter(is_contested, latest), key=lambda s: s.updated_at)
    preview = preview_snapshots(conn, uncontested)
    changes = {s.clerk_id: Change.UNCHANGED for s in uncontested if preview[s.clerk_id] == Change.UNCHANGED}
    batch = [s for s in uncontested if s.clerk_id not in changes]
    if not batch and not contested:
        return changes
    _lock_emails(conn, [*batch, *contested])  # held to commit: the one-by-one path below re-enters them at no cost
    if batch:
        savepoint = conn.begin_nested()
        try:
            changes.update(_apply_batch(conn, batch))
        except DBAPIError as exc:
            savepoint.rollback()
            if not _retryable(exc):
                raise
            log.info("batch of %d met a concurrent writer (%s): applying one by one", len(batch), type(exc).__name__)
            contested = sorted([*batch, *contested], key=lambda s: s.updated_at)
        else:
            savepoint.commit()
    for snapshot in contested:
        changes[snapshot.clerk_id] = _apply_in_savepoint(conn, snapshot)
    return changes


def preview_snapshots(conn: Connection, snapshots: Iterable[UserSnapshot]) -> dict[str, Change]:
    """What `apply_snapshots` would do to each user's own row, found with one SELECT that writes nothing."""
    latest = _latest_per_user(snapshots)
    if not latest:
        return {}
    rows = _batch_rows(latest)
    stored = User.__table__
    query = select(
        rows.c.clerk_id,
        stored.c.id.is_(None).label("missing"),
        _newer_and_different(stored.c, rows.c).label("applies"),
    ).select_from(rows.outerjoin(stored, stored.c.clerk_id == rows.c.clerk_id))
    changes = {}
    for row in conn.execute(query):
        if row.missing:
            changes[row.clerk_id] = Change.CREATED
        else:
            changes[row.clerk_id] = Change.UPDATED if row.applies else Change.UNCHANGED
    return changes
