"""The signed-in user: one row of the mirror, read once per request or from a short per-process cache.

Pages only read the signed-in user (its id for carts and orders, its name for the header), so
the session hook keeps an immutable snapshot instead of an ORM object. Looking the row up on
every request was a fifth of a signed-in page's cost; the cache keeps each snapshot for
`SIGNED_IN_USER_CACHE_SECONDS` (default 5, 0 turns it off) in each worker process.

What a cached snapshot can miss for at most that long, and why that is safe:
- a profile change from Clerk (name, e-mail, image) shows a few seconds late;
- a role change: `admin_required` reads the row afresh, so staff rights are never taken from the
  cache; only the header's Admin link follows later;
- a deletion: the shopper stays signed in until the snapshot expires, as Clerk's own session
  token stays valid until it expires (60 s) after Clerk revokes the session. Checkout reads the
  user afresh and refuses a deleted one.
A change this process makes itself (a webhook, a role change) forgets the snapshot at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import bindparam, select

from shop.extensions import db
from shop.models import Role, User, UserFacts

_users = User.__table__.c
_LOOKUP = select(
    _users.id,
    _users.clerk_id,
    _users.email,
    _users.first_name,
    _users.last_name,
    _users.image_url,
    _users.role,
    _users.deleted_at,
    _users.needs_resync,
).where(_users.clerk_id == bindparam("clerk_id"))


@dataclass(frozen=True, slots=True)
class SignedInUser(UserFacts):
    id: int
    clerk_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    image_url: str | None
    role: Role
    deleted_at: datetime | None
    needs_resync: bool = False  # another user took this one's e-mail: shop.auth.resync repairs it


class SnapshotCache:
    """Snapshots by Clerk id for `seconds`; only found users are kept, so a first sign-in is never missed."""

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, SignedInUser]] = {}
        self._lock = threading.Lock()

    def get(self, clerk_id: str) -> SignedInUser | None:
        entry = self._entries.get(clerk_id)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, user: SignedInUser) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[user.clerk_id] = (time.monotonic() + self.seconds, user)

    def forget(self, clerk_id: str) -> None:
        with self._lock:
            self._entries.pop(clerk_id, None)


def cache() -> SnapshotCache:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if "signed_in_users" not in app.extensions:
        app.extensions["signed_in_users"] = SnapshotCache(app.config["SIGNED_IN_USER_CACHE_SECONDS"])
    return app.extensions["signed_in_users"]


def load(clerk_id: str) -> SignedInUser | None:
    """The user's row as it is now (a tombstone included), which also renews the cached snapshot;
    None if there is none."""
    row = db.session.connection().execute(_LOOKUP, {"clerk_id": clerk_id}).first()
    if row is None:
        return None
    user = SignedInUser(**row._mapping)
    cache().put(user)
    return user


def lookup(clerk_id: str) -> SignedInUser | None:
    """The signed-in user's snapshot, from the cache while it is fresh."""
    return cache().get(clerk_id) or load(clerk_id)


def forget(clerk_id: str | None) -> None:
    """Called after this process changed the user's row: the next request reads it afresh."""
    if clerk_id:
        cache().forget(clerk_id)
