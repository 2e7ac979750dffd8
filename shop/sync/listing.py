"""Every Clerk user, through `GET /users`: what the sync and the drift check both read.

The listing pages oldest first, so users who sign up while it runs only append at the end. It
keeps no user: each page's snapshots go to the caller, and each page's ids to a `SeenIds` of the
caller's (a temporary table for the sync, a set for the drift check), which answers how many of
them were new.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Protocol

from shop.clerk.api import ClerkAPI, ClerkAPIError
from shop.clerk.users import NotAClerkUser, UserSnapshot, clerk_user_id, parse_user

log = logging.getLogger(__name__)

PAGE_SIZE = 500  # Clerk's largest page
# Live users of the mirror missing from a complete listing: at most this many are checked one by
# one with Clerk (and tombstoned, by the sync, when Clerk answers 404).
DEFAULT_MAX_TOMBSTONES = 1000


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, listed: int) -> None: ...


class SeenIds(Protocol):
    """The ids a listing has met so far."""

    def add(self, ids: list[str]) -> int:
        """Remember `ids` (one page's); how many of them were not met before."""
        ...


class Listing:
    """Every Clerk user, oldest first, one page at a time; knows whether it reached the end.

    It ends at a page shorter than PAGE_SIZE, or at a full page that reaches the count Clerk
    gave at the start (saving a round trip for an empty page). A user created after that last
    page is not in the listing: if a webhook brought it in, the missing-user check applies it.
    """

    def __init__(self, api: ClerkAPI, seen: SeenIds, *, progress: Progress | None = None, page_size: int = PAGE_SIZE):
        self.api = api
        self.seen = seen
        self.progress = progress
        self.page_size = page_size
        self.clerk_count: int | None = None
        self.pages = 0
        self.listed = 0
        self.unparsable = 0  # users that could not be read (each one a failure)
        self.unidentified = 0  # of those, without even an id: then nobody can be tombstoned
        self.complete = False
        self.error: str | None = None

    def snapshots(self) -> Iterator[UserSnapshot]:
        try:
            self.clerk_count = self.api.count_users()
        except ClerkAPIError as exc:
            self.error = str(exc)
            return
        if self.progress:
            self.progress.start(self.clerk_count)
        offset = 0
        while True:
            try:
                page = self.api.list_users(limit=self.page_size, offset=offset, order_by="created_at")
            except ClerkAPIError as exc:
                self.error = f"The listing stopped after {offset} of {self.clerk_count} users: {exc}"
                return
            self.pages += 1
            self.listed += len(page)
            unidentified = self.unidentified
            snapshots, ids = self._parse(page)
            new = self.seen.add(ids) + self.unidentified - unidentified
            yield from snapshots
            if self.progress:
                self.progress.advance(len(page))
            offset += len(page)
            if len(page) < self.page_size or offset >= self.clerk_count:
                self.complete = self.unidentified == 0
                return
            if new == 0:
                self.error = (
                    f"Clerk's listing repeated users already listed at offset {offset - len(page)}; "
                    "the listing is not reliable, so nothing was tombstoned."
                )
                return

    def _parse(self, page: list[dict]) -> tuple[list[UserSnapshot], list[str]]:
        """The page's users that can be read, and the ids of all that have one (a user that
        cannot be read still exists in Clerk: never tombstone it)."""
        snapshots: list[UserSnapshot] = []
        ids: list[str] = []
        for user in page:
            try:
                snapshot = parse_user(user)
            except NotAClerkUser as exc:
                self.unparsable += 1
                raw_id = user.get("id") if isinstance(user, dict) else None
                try:
                    ids.append(clerk_user_id(raw_id))
                except NotAClerkUser:
                    self.unidentified += 1
                log.warning("Clerk user %s skipped: %s", raw_id if isinstance(raw_id, str) else "?", exc)
                continue
            snapshots.append(snapshot)
            ids.append(snapshot.clerk_id)
        return snapshots, ids


def chunks(snapshots: Iterable[UserSnapshot], size: int) -> Iterator[list[UserSnapshot]]:
    chunk: list[UserSnapshot] = []
    for snapshot in snapshots:
        chunk.append(snapshot)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
