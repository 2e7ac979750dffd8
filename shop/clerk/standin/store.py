"""The stand-in's users, shaped like Clerk's, in a JSON file (development only; one writer at a time)."""

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
            return users.get(user_id)

    def all(self) -> list[dict[str, Any]]:
        with self._locked() as users:
            return sorted(users.values(), key=lambda user: (user["created_at"], user["id"]))

    def sign_in(self, email: str, first_name: str | None, last_name: str | None) -> tuple[dict[str, Any], bool]:
        """The user with this e-mail (created if new, names updated if given); and whether it is new."""
        now = int(time.time() * 1000)
        user_id = "user_standin" + hashlib.sha256(email.lower().encode()).hexdigest()[:18]
        with self._locked() as users:
            user = users.get(user_id)
            created = user is None
            if created:
                email_id = "idn_" + user_id.removeprefix("user_")
                user = {
                    "object": "user",
                    "id": user_id,
                    "email_addresses": [
                        {
                            "object": "email_address",
                            "id": email_id,
                            "email_address": email,
                            "verification": {"status": "verified", "strategy": "email_code"},
                            "linked_to": [],
                        }
                    ],
                    "primary_email_address_id": email_id,
                    "first_name": first_name,
                    "last_name": last_name,
                    "image_url": None,
                    "public_metadata": {},
                    "private_metadata": {},
                    "unsafe_metadata": {},
                    "external_accounts": [],
                    "created_at": now,
                    "updated_at": now,
                    "last_sign_in_at": now,
                }
            elif (first_name, last_name) != (user["first_name"], user["last_name"]) and (first_name or last_name):
                user.update(first_name=first_name, last_name=last_name, updated_at=max(now, user["updated_at"] + 1))
            user["last_sign_in_at"] = now
            users[user_id] = user
            return user, created

    def update_names(self, user_id: str, first_name: str | None, last_name: str | None) -> dict[str, Any] | None:
        with self._locked() as users:
            user = users.get(user_id)
            if user is not None:
                now = int(time.time() * 1000)
                user.update(first_name=first_name, last_name=last_name, updated_at=max(now, user["updated_at"] + 1))
            return user

    def delete(self, user_id: str) -> bool:
        with self._locked() as users:
            return users.pop(user_id, None) is not None
