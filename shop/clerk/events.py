"""Clerk's webhook envelope: `{"type": …, "data": …, "object": "event", …}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shop.clerk.users import NotAClerkUser, UserSnapshot, clerk_user_id, parse_user
from shop.payloads import is_storable, storable

USER_UPSERT_TYPES = frozenset({"user.created", "user.updated"})
USER_DELETED = "user.deleted"


class NotAClerkEvent(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ClerkEvent:
    type: str
    user_id: str | None
    snapshot: UserSnapshot | None = None  # for user.created / user.updated

    @property
    def is_handled(self) -> bool:
        return self.type in USER_UPSERT_TYPES or self.type == USER_DELETED


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
    except NotAClerkUser as exc:
        raise NotAClerkEvent(f"{kind}: {exc}") from exc
    return ClerkEvent(kind, None)  # another kind of event: recorded, then ignored
