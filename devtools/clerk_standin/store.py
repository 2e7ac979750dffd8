"""The stand-in's users, shaped like Clerk's, in a JSON file (development only; one writer at a time).

Every User carries each field Clerk's Backend API OpenAPI marks required, with the values Clerk's
own examples show for a user who signed up with an e-mail code (see `new_user`), so Clerk's SDKs
read them as they read Clerk's answers.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class UserStore:
    def __init__(self, folder: Path):
        self.path = folder / "users.json"
        self.lock_path = folder / "users.lock"

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            users = json.loads(self.path.read_text()) if self.path.exists() else {}
            before = json.dumps(users, sort_keys=True)
            yield users
            if json.dumps(users, sort_keys=True) != before:
                temporary = self.path.with_suffix(".tmp")
                temporary.write_text(json.dumps(users, indent=1))
                os.replace(temporary, self.path)

    def get(self, user_id: str) -> dict[str, Any] | None:
        with self._locked() as users:
            user = users.get(user_id)
            return complete(user) if user else None

    def all(self) -> list[dict[str, Any]]:
        """Every user, oldest first (Clerk's `order_by=created_at`)."""
        with self._locked() as users:
            return sorted((complete(u) for u in users.values()), key=lambda user: (user["created_at"], user["id"]))

    def sign_in(
        self, email: str, first_name: str | None, last_name: str | None, image_url: str
    ) -> tuple[dict[str, Any], bool]:
        """The user with this e-mail (created if new, names updated if given); and whether it is new."""
        now = int(time.time() * 1000)
        user_id = "user_standin" + hashlib.sha256(email.lower().encode()).hexdigest()[:18]
        with self._locked() as users:
            user = users.get(user_id)
            created = user is None
            if user is None:
                user = new_user(user_id, email, first_name, last_name, image_url, now)
            elif (first_name, last_name) != (user["first_name"], user["last_name"]) and (first_name or last_name):
                user.update(first_name=first_name, last_name=last_name, updated_at=max(now, user["updated_at"] + 1))
            user.update(last_sign_in_at=now, last_active_at=now)
            users[user_id] = user
            return complete(user), created

    def update_names(self, user_id: str, first_name: str | None, last_name: str | None) -> dict[str, Any] | None:
        with self._locked() as users:
            user = users.get(user_id)
            if user is not None:
                now = int(time.time() * 1000)
                user.update(first_name=first_name, last_name=last_name, updated_at=max(now, user["updated_at"] + 1))
            return complete(user) if user else None

    def update_metadata(self, user_id: str, changes: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        """Clerk's `PATCH …/metadata`: each given object (`unsafe_metadata` …) deep-merged into the user's.

        Raises MetadataTooLarge, and stores nothing, when a merged object would exceed Clerk's 8 KB."""
        with self._locked() as users:
            user = users.get(user_id)
            if user is None:
                return None
            merged = {name: merge_metadata(user.get(name) or {}, change) for name, change in changes.items()}
            for name, value in merged.items():
                if len(json.dumps(value, separators=(",", ":")).encode()) > MAX_METADATA_BYTES:
                    raise MetadataTooLarge(name)
            now = int(time.time() * 1000)
            user.update(merged, updated_at=max(now, user["updated_at"] + 1))
            return complete(user)

    def delete(self, user_id: str) -> bool:
        with self._locked() as users:
            return users.pop(user_id, None) is not None


MAX_METADATA_BYTES = 8192  # Clerk's cap on each metadata object (compact JSON)


class MetadataTooLarge(ValueError):
    """A merged metadata object over Clerk's 8 KB; its name is the argument."""


def merge_metadata(current: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """Clerk's deep merge of metadata: nested objects merge key by key, a null removes its key,
    anything else (an array included) replaces the old value."""
    merged = dict(current)
    for key, value in change.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict):
            old = merged.get(key)
            merged[key] = merge_metadata(old if isinstance(old, dict) else {}, value)
        else:
            merged[key] = value
    return merged


def new_user(
    user_id: str, email: str, first_name: str | None, last_name: str | None, image_url: str, now: int
) -> dict[str, Any]:
    """A User as Clerk's Backend API returns it (the OpenAPI spec's example, for an e-mail-code sign-up)."""
    email_id = "idn_" + user_id.removeprefix("user_")
    return {
        **_DEFAULTS,
        "id": user_id,
        "email_addresses": [
            {
                "object": "email_address",
                "id": email_id,
                "email_address": email,
                "reserved": False,
                "verification": {
                    "object": "verification_otp",
                    "status": "verified",
                    "strategy": "email_code",
                    "attempts": 1,
                    "expire_at": now + 600_000,
                },
                "linked_to": [],
                "matches_sso_connection": False,
                "created_at": now,
                "updated_at": now,
            }
        ],
        "primary_email_address_id": email_id,
        "first_name": first_name,
        "last_name": last_name,
        "image_url": image_url,
        "profile_image_url": image_url,
        "created_at": now,
        "updated_at": now,
        "last_sign_in_at": now,
        "last_active_at": now,
        "legal_accepted_at": None,
    }


# What Clerk sends for a user with no phone, wallet, passkey, SSO or second factor, and no uploaded image.
_DEFAULTS: dict[str, Any] = {
    "object": "user",
    "external_id": None,
    "primary_phone_number_id": None,
    "primary_web3_wallet_id": None,
    "username": None,
    "has_image": False,
    "public_metadata": {},
    "private_metadata": {},
    "unsafe_metadata": {},
    "phone_numbers": [],
    "web3_wallets": [],
    "passkeys": [],
    "password_enabled": False,
    "two_factor_enabled": False,
    "totp_enabled": False,
    "backup_code_enabled": False,
    "mfa_enabled_at": None,
    "mfa_disabled_at": None,
    "external_accounts": [],
    "saml_accounts": [],
    "enterprise_accounts": [],
    "banned": False,
    "locked": False,
    "lockout_expires_in_seconds": None,
    "verification_attempts_remaining": 100,
    "delete_self_enabled": True,
    "create_organization_enabled": True,
    "create_organizations_limit": None,
    "last_active_at": None,
    "legal_accepted_at": None,
}


def complete(user: dict[str, Any]) -> dict[str, Any]:
    """A stored user with every field Clerk sends (users.json written by older versions lacks some)."""
    user = {**_DEFAULTS, **user}
    for address in user["email_addresses"]:
        address.setdefault("reserved", False)
        address.setdefault("created_at", user["created_at"])
        address.setdefault("updated_at", user["created_at"])
        verification = address.get("verification") or {}
        verification.setdefault("object", "verification_otp")
        verification.setdefault("attempts", 1)
        verification.setdefault("expire_at", user["created_at"] + 600_000)
        address["verification"] = verification
    return user
