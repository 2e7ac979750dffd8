"""Clerk's User object, turned into the snapshot the mirror stores.

`FIELDS` is the one declarative list of what the mirror keeps of a Clerk user beyond its id, e-mail
and `updated_at` (which the mirror's own rules use): each entry names a column of `users` and says
how its value is read off Clerk's User JSON. The mirror writes, compares, batches and erases every
column listed here the same way (shop.mirror), on every path (webhook, first sign-in, sync).
Adding a field is one line here, its column in shop.models.User, and a migration:
docs/custom-fields.md walks through one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from shop.payloads import UNSTORABLE_TEXT, storable_json

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 64
MAX_TIMESTAMP = 2**63 - 1  # PostgreSQL bigint
MAX_METADATA_BYTES = 8 * 1024  # Clerk's own cap on each metadata object, as compact UTF-8 JSON


class NotAClerkUser(ValueError):
    pass


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if UNSTORABLE_TEXT.search(value):
        raise NotAClerkUser("the user has text that cannot be stored (a NUL character or a lone surrogate)")
    return value.strip() or None


def _primary(user: Mapping[str, Any], list_key: str, id_key: str, value_key: str) -> str | None:
    """The item of `user[list_key]` whose id is `user[id_key]` (Clerk's primary one), its `value_key`;
    not simply the first in the list."""
    primary_id = user.get(id_key)
    items = user.get(list_key) or []
    if not primary_id or not isinstance(items, list):
        return None
    for item in items:
        if isinstance(item, dict) and item.get("id") == primary_id:
            value = item.get(value_key)
            return value.strip() or None if isinstance(value, str) else None
    return None


def primary_email(user: Mapping[str, Any]) -> str | None:
    # Not _text: an address PostgreSQL cannot store is the mirror's to drop (shop.mirror.storable),
    # keeping the rest of the user, as it drops one with any other control character.
    return _primary(user, "email_addresses", "primary_email_address_id", "email_address")


def primary_phone(user: Mapping[str, Any]) -> str | None:
    """The number of `primary_phone_number_id` among `phone_numbers` (E.164 as Clerk keeps it)."""
    return _text(_primary(user, "phone_numbers", "primary_phone_number_id", "phone_number"))


def metadata(name: str) -> Callable[[Mapping[str, Any]], dict[str, Any] | None]:
    """A reader of one of Clerk's metadata objects.

    Clerk sends `"private_metadata": null` in real webhooks, and older payloads lack the keys: both
    are {}. Anything the mirror will not keep is None (NULL), with a warning naming the user, never
    the content, and the rest of the snapshot still applies (the user can sign in): a value that is
    not a JSON object, one over Clerk's 8 KB as compact UTF-8 JSON, or one PostgreSQL cannot store
    (a NUL character, a lone surrogate).
    """

    def read(user: Mapping[str, Any]) -> dict[str, Any] | None:
        value = user.get(name)
        if value is None:
            return {}
        text = storable_json(value) if isinstance(value, dict) else None
        if not isinstance(value, dict):
            problem = "is not a JSON object"
        elif text is None:
            problem = "holds text PostgreSQL cannot store"
        elif len(text.encode()) > MAX_METADATA_BYTES:  # storable: no lone surrogate, so it encodes
            problem = f"is over {MAX_METADATA_BYTES} bytes"
        else:
            return value
        log.warning("user %s: Clerk's %s %s; stored as NULL", user.get("id"), name, problem)
        return None

    return read


def metadata_flag(name: str, key: str) -> Callable[[Mapping[str, Any]], bool]:
    """True only when `user[name][key]` is JSON `true`: a string "true" or a 1 is not a yes."""

    def read(user: Mapping[str, Any]) -> bool:
        value = user.get(name)
        return isinstance(value, dict) and value.get(key) is True

    return read


def flag(key: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda user: user.get(key) is True


@dataclass(frozen=True, slots=True)
class Field:
    """One Clerk-owned column: its name in `users`, how it is read off a Clerk User, and what a
    tombstone leaves in it (personal data erased; booleans back to false)."""

    column: str
    read: Callable[[Mapping[str, Any]], Any]
    erased: Any = None


FIELDS: tuple[Field, ...] = (
    Field("first_name", lambda user: _text(user.get("first_name"))),
    Field("last_name", lambda user: _text(user.get("last_name"))),
    # profile_image_url is deprecated but still the only one in old payloads.
    Field("image_url", lambda user: _text(user.get("image_url")) or _text(user.get("profile_image_url"))),
    Field("phone", primary_phone),
    # The shopper's own choice, written from their browser (unsafe_metadata): fine for sending news,
    # never for deciding what anyone may do.
    Field("marketing_opt_in", metadata_flag("unsafe_metadata", "marketing_opt_in"), erased=False),
    Field("banned", flag("banned"), erased=False),
    Field("locked", flag("locked"), erased=False),
    Field("public_metadata", metadata("public_metadata")),
    Field("private_metadata", metadata("private_metadata")),
    Field("unsafe_metadata", metadata("unsafe_metadata")),
)
FIELD_COLUMNS = tuple(field.column for field in FIELDS)


@dataclass(frozen=True, slots=True)
class UserSnapshot:
    """What the mirror keeps of a Clerk user. `updated_at` is Clerk's, in milliseconds; `fields`
    holds a value for every column of FIELDS, also readable as attributes (`snapshot.phone`)."""

    clerk_id: str
    email: str | None
    updated_at: int
    fields: Mapping[str, Any]

    @classmethod
    def of(cls, clerk_id: str, email: str | None, updated_at: int, **fields: Any) -> UserSnapshot:
        """A snapshot from values (tests, benchmarks, the sync's stand-ins); a field not given holds what
        a Clerk User without it would give."""
        unknown = set(fields) - set(FIELD_COLUMNS)
        if unknown:
            raise TypeError(f"not a field of the mirror: {sorted(unknown)}")
        values = {field.column: fields[field.column] if field.column in fields else field.read({}) for field in FIELDS}
        return cls(clerk_id, email, updated_at, MappingProxyType(values))

    def __getattr__(self, name: str) -> Any:
        fields = object.__getattribute__(self, "fields")
        if name in fields:
            return fields[name]
        raise AttributeError(name)


def clerk_user_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH or UNSTORABLE_TEXT.search(value):
        raise NotAClerkUser("the user has no valid id")
    return value


def parse_user(user: Any) -> UserSnapshot:
    """Parse a Clerk User (webhook `data` or Backend API), or raise NotAClerkUser."""
    if not isinstance(user, dict):
        raise NotAClerkUser("the user is not a JSON object")
    updated_at = user.get("updated_at")
    if isinstance(updated_at, bool) or not isinstance(updated_at, int) or not 0 <= updated_at <= MAX_TIMESTAMP:
        raise NotAClerkUser("the user has no updated_at")
    clerk_id = clerk_user_id(user.get("id"))
    return UserSnapshot(
        clerk_id=clerk_id,
        email=primary_email(user),
        updated_at=updated_at,
        fields=MappingProxyType({field.column: field.read(user) for field in FIELDS}),
    )
