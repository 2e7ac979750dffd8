"""Where to send a shopper after signing in: only ever one of our own paths."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request


def safe_next(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site (no other host, no scheme, no `//`), else `default`."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 32 for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def current_page() -> str:
    """This page's path and query for a link back to it ("Reload", "Try again"). The raw path could
    be `/\\evil.example/` (from `/%5Cevil.example/`), which a browser opens as another site."""
    return safe_next(request.full_path.rstrip("?"))


def return_path() -> str:
    """The page to come back to after sign-in: this one for a GET; for a form post, the page the
    form was on (going back to a POST-only address would answer 405)."""
    if request.method == "GET":
        return current_page()
    referrer = urlsplit(request.referrer or "")
    same_site = referrer.netloc in ("", request.host)
    path = referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return safe_next(path, "/") if same_site and path else "/"
