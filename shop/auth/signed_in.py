"""The signed-in user: one row of the mirror, read on every request, as an immutable snapshot.

Pages only read the signed-in user (its id for carts and orders, its name for the header), so the
session hook keeps an immutable snapshot instead of an ORM object. It is read afresh on every
request, in every worker: a deletion, a demotion or a profile change shows with the next request,
whatever process made it. (A per-process cache once saved the one indexed SELECT, about 0.2 ms of a
page that costs several, and left deleted shoppers signed in for seconds in other workers.)

The same SELECT says whether the token's session was revoked, ended or removed at Clerk
(shop.revoked_sessions, filled by Clerk's `session.*` webhooks): verified tokens are cached per
process, so this per-request read is where a revocation counts everywhere at once, at the cost of
one primary-key probe inside the query that runs anyway. A ban (`banned`) is read the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import bindparam, exists, select

from shop.extensions import db
from shop.models import User, UserFacts
from shop.revoked_sessions import RevokedSession


@dataclass(frozen=True, slots=True)
class SignedInUser(UserFacts):
    """The signed-in user's row: UserFacts, frozen, whether the row waits for a re-sync, and whether
    the session the request came with was revoked.

    Its fields are UserFacts' (declared there, once), `needs_resync` and `session_revoked`: a
    dataclass takes its fields from the class's own `__annotations__`, so they are given here
    instead of written out a second time. The look-up selects exactly these columns.
    """

    __annotations__ = {**UserFacts.__annotations__, "needs_resync": "bool", "session_revoked": "bool"}
    needs_resync = False  # another user took this one's e-mail: shop.auth.resync repairs it
    session_revoked = False  # Clerk ended this request's session: shop.auth.session signs it out


_users = User.__table__.c
_revoked = RevokedSession.__table__.c
_LOOKUP = select(
    *(_users[field.name] for field in fields(SignedInUser) if field.name != "session_revoked"),
    exists().where(_revoked.session_id == bindparam("session_id")).label("session_revoked"),
).where(_users.clerk_id == bindparam("clerk_id"))


def lookup(clerk_id: str, session_id: str = "") -> SignedInUser | None:
    """The user's row as it is now (a tombstone included), and whether `session_id` (the token's
    `sid`) was revoked; None if there is no row. One SELECT."""
    row = db.session.connection().execute(_LOOKUP, {"clerk_id": clerk_id, "session_id": session_id}).first()
    return SignedInUser(**row._mapping) if row is not None else None
