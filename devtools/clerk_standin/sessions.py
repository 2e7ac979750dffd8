"""The stand-in's sessions, shaped like Clerk's Session (`@clerk/backend`'s `SessionJSON`), in a JSON file.

Each sign-in starts one; signing out ends it (`ended`), revoking it from another device or through
the Backend API revokes it (`revoked`). Only an active session gets fresh tokens (the browser's
token refresh, the handshake): a session id the store does not know, or no longer keeps, is signed
out. Ended sessions are forgotten a day after they end, active ones when they expire: the file stays small.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SESSION_LIFETIME_MS = 7 * 86_400_000  # Clerk's default maximum session lifetime
FORGET_ENDED_AFTER_MS = 86_400_000


class SessionStore:
    def __init__(self, folder: Path):
        self.path = Path(folder) / "sessions.json"
        self.lock_path = Path(folder) / "sessions.lock"

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            sessions = json.loads(self.path.read_text()) if self.path.exists() else {}
            before = json.dumps(sessions, sort_keys=True)
            yield sessions
            now = int(time.time() * 1000)
            for session_id, session in list(sessions.items()):
                ended = session["status"] != "active" and session["updated_at"] < now - FORGET_ENDED_AFTER_MS
                if ended or session["expire_at"] < now:
                    del sessions[session_id]
            if json.dumps(sessions, sort_keys=True) != before:
                temporary = self.path.with_suffix(".tmp")
                temporary.write_text(json.dumps(sessions, indent=1))
                os.replace(temporary, self.path)

    def start(self, user_id: str) -> dict[str, Any]:
        now = int(time.time() * 1000)
        session: dict[str, Any] = {
            "object": "session",
            "id": f"sess_{uuid.uuid4().hex[:24]}",
            "client_id": f"client_{uuid.uuid4().hex[:24]}",
            "user_id": user_id,
            "status": "active",
            "last_active_at": now,
            "expire_at": now + SESSION_LIFETIME_MS,
            "abandon_at": now + SESSION_LIFETIME_MS,
            "created_at": now,
            "updated_at": now,
        }
        with self._locked() as sessions:
            sessions[session["id"]] = session
        return session

    def get(self, session_id: str) -> dict[str, Any] | None:
        with self._locked() as sessions:
            return sessions.get(session_id)

    def is_active(self, session_id: str) -> bool:
        session = self.get(session_id)
        return session is not None and session["status"] == "active"

    def end(self, session_id: str, status: str) -> dict[str, Any] | None:
        """End an active session (`ended`, `revoked`, `removed`); the Session as it now is, or None
        when there is no such active session (already ended: nothing new to tell)."""
        with self._locked() as sessions:
            session = sessions.get(session_id)
            if session is None or session["status"] != "active":
                return None
            session.update(status=status, updated_at=max(int(time.time() * 1000), session["updated_at"] + 1))
            return dict(session)

    def active_of(self, user_id: str) -> list[dict[str, Any]]:
        with self._locked() as sessions:
            return [s for s in sessions.values() if s["user_id"] == user_id and s["status"] == "active"]
