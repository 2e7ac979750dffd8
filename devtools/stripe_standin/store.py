"""The stand-in's Stripe objects, one JSON file each, and its idempotency records (flock: one writer)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_held = threading.local()  # how deep this thread is inside `locked` (flock alone would block on itself)


MAX_ID_LENGTH = 100  # far above the stand-in's own ids (cs_test_standin + 24 hex digits)


class ObjectStore:
    def __init__(self, folder: Path):
        self.objects = folder / "objects"
        self.replies = folder / "idempotency"
        self.lock_path = folder / "objects.lock"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.replies.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def locked(self) -> Iterator[ObjectStore]:
        """One mutation at a time, across threads and processes; re-entrant within a thread (an
        idempotent POST holds the lock around the view, which takes it again)."""
        if getattr(_held, "depth", 0):
            _held.depth += 1
            try:
                yield self
            finally:
                _held.depth -= 1
            return
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _held.depth = 1
            try:
                yield self
            finally:
                _held.depth = 0

    def _path(self, object_id: str) -> Path:
        # Ids are file names: only what the stand-in itself makes (letters, digits, _; short) is one.
        if not object_id.replace("_", "").isalnum() or not object_id.isascii() or len(object_id) > MAX_ID_LENGTH:
            raise KeyError(object_id)
        return self.objects / f"{object_id}.json"

    def get(self, object_id: str) -> dict[str, Any] | None:
        try:
            path = self._path(object_id)
        except KeyError:
            return None
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        path = self._path(obj["id"])
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(obj, indent=1))
        os.replace(temporary, path)
        return obj

    def _reply_path(self, key: str) -> Path:
        return self.replies / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def reply_for(self, key: str) -> tuple[int, dict[str, Any]] | None:
        """What a POST with this idempotency key answered before (Stripe keeps them 24 hours)."""
        path = self._reply_path(key)
        if not path.exists():
            return None
        stored = json.loads(path.read_text())
        return stored["status"], stored["body"]

    def remember_reply(self, key: str, status: int, body: dict[str, Any]) -> None:
        self._reply_path(key).write_text(json.dumps({"status": status, "body": body}))
