"""Clerk's webhook envelope: `{"type": …, "data": …, "object": "event", …}`.

`user.created|updated` carry a whole User (shop.clerk.users), `user.deleted` only its id;
`session.revoked|ended|removed` carry a Session (`@clerk/backend`'s `SessionJSON`: `id`, `user_id`,
`status`, the times in ms), of which the shop keeps the id it must refuse from now on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shop.clerk.users import MAX_ID_LENGTH, MAX_TIMESTAMP, NotAClerkUser, UserSnapshot, clerk_user_id, parse_user
from shop.payloads import is_storable, storable

USER_UPSERT_TYPES = frozenset({"user.created", "user.updated"})
USER_DELETED = "user.deleted"
# A session that can sign nobody in any more: its tokens are refused from the next request on.
# (`session.created` needs nothing: a session is valid until one of these says otherwise.)
SESSION_ENDED_TYPES = frozenset({"session.revoked", "session.ended", "session.removed"})


class NotAClerkEvent(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class EndedSession:
    """A Clerk session revoked, ended or removed: its id (the tokens' `sid`), whose it was, and when."""

    session_id: str
    user_id: str | None
    status: str  # "revoked", "ended" or "removed": the event's
    ended_at: int | None  # the Session's `updated_at` (ms), when it has one


@dataclass(frozen=True, slots=True)
class ClerkEvent:
    type: str
    user_id: str | None
    snapshot: UserSnapshot | None = None  # for user.created / user.updated
    ended_session: EndedSession | None = None  # for session.revoked / ended / removed

    @property
    def is_handled(self) -> bool:
        return self.type in USER_UPSERT_TYPES or self.type == USER_DELETED or self.type in SESSION_ENDED_TYPES


def event_type(payload: Any) -> str | None:
    """The envelope's type if it has one, for recording and logging even a malformed event."""
    if isinstance(payload, dict) and isinstance(payload.get("type"), str):
        return storable(payload["type"][:100])
    return None


def parse_event(payload: Any) -> ClerkEvent:
    """Parse an envelope, or raise NotAClerkEvent saying what is wrong with it."""
    if not is_storable(payload):
        # The event is recorded with the payload it could store (see storable); never applied.
        raise NotAClerkEvent("the body has text that cannot be stored (a NUL character or a lone surrogate)")
    kind = event_type(payload)
    if kind is None or not isinstance(payload.get("data"), dict):
        raise NotAClerkEvent("the body is not a Clerk event (it needs a string `type` and an object `data`)")
    data = payload["data"]
    try:
        if kind in USER_UPSERT_TYPES:
            snapshot = parse_user(data)
            return ClerkEvent(kind, snapshot.clerk_id, snapshot)
        if kind == USER_DELETED:
            return ClerkEvent(kind, clerk_user_id(data.get("id")))
        if kind in SESSION_ENDED_TYPES:
            ended = parse_ended_session(kind, data)
            return ClerkEvent(kind, ended.user_id, ended_session=ended)
    except NotAClerkUser as exc:
        raise NotAClerkEvent(f"{kind}: {exc}") from exc
    return ClerkEvent(kind, None)  # another kind of event: recorded, then ignored


def parse_ended_session(kind: str, session: dict[str, Any]) -> EndedSession:
    """A `session.revoked|ended|removed` event's Session, or NotAClerkEvent. Only its id is needed;
    whatever else is there must still have Clerk's types (a body that has not is not Clerk's)."""
    if session.get("object", "session") != "session":
        raise NotAClerkEvent(f"{kind}: the data is not a session")
    session_id = session.get("id")
    if not isinstance(session_id, str) or not session_id.strip() or len(session_id) > MAX_ID_LENGTH:
        raise NotAClerkEvent(f"{kind}: the session has no valid id")
    user_id = session.get("user_id")
    if user_id is not None:
        try:
            user_id = clerk_user_id(user_id)
        except NotAClerkUser:
            raise NotAClerkEvent(f"{kind}: the session's user_id is not a Clerk user id") from None
    updated_at = session.get("updated_at")
    if updated_at is not None and (
        isinstance(updated_at, bool) or not isinstance(updated_at, int) or not 0 <= updated_at <= MAX_TIMESTAMP
    ):
        raise NotAClerkEvent(f"{kind}: the session's updated_at is not a time in milliseconds")
    return EndedSession(session_id, user_id, kind.removeprefix("session."), updated_at)
