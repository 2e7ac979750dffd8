"""Clerk's `session.*` webhook payloads, for the tests of revoked sessions."""

from __future__ import annotations

import time
from typing import Any

from tests.support import event


def session_event(kind: str, session_id: str, user_id: str | None = "user_two_devices", **fields: Any) -> dict:
    """Clerk's `session.*` event: `data` is a Session (@clerk/backend's SessionJSON), times in ms;
    the session ended now unless `updated_at` says otherwise."""
    now = int(time.time() * 1000)
    return event(
        kind,
        {
            "object": "session",
            "id": session_id,
            "client_id": "client_test",
            "user_id": user_id,
            "status": kind.removeprefix("session."),
            "last_active_at": now - 60_000,
            "expire_at": now + 7 * 86_400_000,
            "abandon_at": now + 30 * 86_400_000,
            "created_at": now - 3_600_000,
            "updated_at": now,
            **fields,
        },
    )
