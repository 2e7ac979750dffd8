"""Clerk's User object, turned into the snapshot the mirror stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shop.payloads import UNSTORABLE_TEXT

MAX_ID_LENGTH = 64
MAX_TIMESTAMP = 2**63 - 1  # PostgreSQL bigint


class NotAClerkUser(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class UserSnapshot:
    """What the mirror keeps of a Clerk user. `updated_at` is Clerk's, in milliseconds."""

    clerk_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    image_url: str | None
    updated_at: int


def clerk_user_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH or UNSTORABLE_TEXT.search(value):
        raise NotAClerkUser("the user has no valid id")
    return value


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if UNSTORABLE_TEXT.search(value):
        raise NotAClerkUser("the user has text that cannot be stored (a NUL character or a lone surrogate)")
    return value.strip() or None


def primary_email(user: dict[str, Any]) -> str | None:
    """The address whose id is `primary_email_address_id`; not simply the first in the list."""
    primary_id = user.get("primary_email_address_id")
    addresses = user.get("email_addresses") or []
    if not primary_id or not isinstance(addresses, list):
        return None
    for address in addresses:
        if isinstance(address, dict) and address.get("id") == primary_id:
            # Not _text: an address PostgreSQL cannot store is the mirror's to drop (shop.mirror.storable),
            # keeping the rest of the user, as it drops one with any other control character.
            email = address.get("email_address")
            return email.strip() or None if isinstance(email, str) else None
    return None


def parse_user(user: Any) -> UserSnapshot:
    """Parse a Clerk User (webhook `data` or Backend API), or raise NotAClerkUser."""
    if not isinstance(user, dict):
        raise NotAClerkUser("the user is not a JSON object")
    updated_at = user.get("updated_at")
    if isinstance(updated_at, bool) or not isinstance(updated_at, int) or not 0 <= updated_at <= MAX_TIMESTAMP:
        raise NotAClerkUser("the user has no updated_at")
    return UserSnapshot(
        clerk_id=clerk_user_id(user.get("id")),
        email=primary_email(user),
        first_name=_text(user.get("first_name")),
        last_name=_text(user.get("last_name")),
        # profile_image_url is deprecated but still the only one in old payloads.
        image_url=_text(user.get("image_url")) or _text(user.get("profile_image_url")),
        updated_at=updated_at,
    )
