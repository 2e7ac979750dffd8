"""Which profile-image URLs from Clerk may be rendered into `<img src>`.

`image_url` comes from Clerk (webhooks, the Backend API), and a user or a compromised integration
can make it anything: a `javascript:` or `data:` URL, a plain-`http:` tracking pixel, `//host`
(which takes the page's scheme). Browsers also drop leading spaces and control characters and
remove tabs and newlines inside a URL before reading its scheme, so a check on the raw text can be
fooled by `" javascript:"` or `"java\\tscript:"`. The rule is therefore strict and positive: only
printable ASCII, no backslash, scheme `https` (any case), a host, no user name. Everything else is
refused (None), and templates fall back to the user's initial.

While the local Clerk stand-in is on (SHOP_DEV_AUTH), its default avatars are also accepted: it
serves them itself under `/dev-clerk/img/<descriptor>` and stores them with the host of the
sign-in request (devtools/clerk_standin/routes.py `_avatar_url`). They are rendered as that
same-origin path, so whatever host the stored URL names, the browser asks this app.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

MAX_URL_LENGTH = 4096
_PRINTABLE_ASCII = re.compile(r"[!-~]+")  # no space, no control character, nothing beyond ASCII
STANDIN_AVATAR = re.compile(r"/dev-clerk/img/[A-Za-z0-9_-]{1,2048}")


def image_src(url: Any, *, standin: bool = False) -> str | None:
    """The URL to put in `<img src>` for a profile image, or None when it must not be rendered."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return None
    if not _PRINTABLE_ASCII.fullmatch(url) or "\\" in url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number, as browsers refuse it)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    standin_avatar = scheme in ("http", "https") and STANDIN_AVATAR.fullmatch(parts.path)
    if standin and standin_avatar and not parts.query and not parts.fragment:
        return parts.path
    if scheme != "https" or not parts.hostname or "@" in parts.netloc:
        return None
    return "https" + url[len(parts.scheme) :]  # `HTTPS://…` is https too; written the usual way


def register(app: Flask) -> None:
    """The `image_src` template filter: `{% set src = user.image_url | image_src %}`, None when refused."""
    standin = bool(app.config.get("SHOP_DEV_AUTH"))
    app.add_template_filter(lambda url: image_src(url, standin=standin), "image_src")
