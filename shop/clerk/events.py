"""Clerk's webhook envelope: `{"type": …, "data": …, "object": "event", …}`."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from shop.clerk.users import UNSTORABLE_TEXT, NotAClerkUser, UserSnapshot, clerk_user_id, parse_user

USER_UPSERT_TYPES = frozenset({"user.created", "user.updated"})
USER_DELETED = "user.deleted"
# Clerk's own objects nest about five deep; the rest is metadata. The bound keeps every recursive
# reader of the stored payload (json's encoder and decoder, the admin page's indented dump) far
# from Python's recursion limit.
MAX_DEPTH = 100
# A string, or what is left of an unterminated one: possessive and always matching from a quote, so
# the scan is linear whatever the input (a required closing quote made it quadratic on `"\"\"\"…`).
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


class NotAClerkEvent(ValueError):
    pass


def _nesting_exceeds(raw: bytes, limit: int) -> bool:
    """Whether the JSON text nests deeper than `limit`, found without parsing (strings skipped)."""
    depth = 0
    for byte in _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in b"[{" else -1
        if depth > limit:
            return True
    return False


def _finite(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):  # 1e400: JSON has no infinity, and neither has JSONB
        raise ValueError("number out of range")
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json accepts NaN and Infinity; PostgreSQL does not


def decode_body(raw: bytes) -> Any:
    """A delivery's JSON, or ValueError (NotAClerkEvent) when it is not JSON this shop can read and
    store: malformed, nested deeper than MAX_DEPTH, or with numbers JSON does not have."""
    if _nesting_exceeds(raw, MAX_DEPTH):
        raise NotAClerkEvent(f"the body nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(raw, parse_float=_finite, parse_constant=_constant)
    except RecursionError as exc:  # the scan above should have refused it first; never a 500
        raise NotAClerkEvent("the body nests too deep") from exc


def storable(value: Any) -> Any:
    """`value` with NUL characters and lone surrogates (in keys and strings) replaced by U+FFFD:
    what PostgreSQL can store of a payload it refused as it came."""
    if isinstance(value, str):
        return UNSTORABLE_TEXT.sub("\ufffd", value)
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


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
    if storable(payload) != payload:
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
