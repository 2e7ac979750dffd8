"""The one thing Clerk's and Svix's rules need from a request's headers: a value by name."""

from __future__ import annotations

from typing import Protocol


class HeaderLookup(Protocol):
    """Flask's `request.headers` (werkzeug's Headers: case-insensitive, not a Mapping) or a plain dict."""

    def get(self, key: str, /) -> str | None: ...
