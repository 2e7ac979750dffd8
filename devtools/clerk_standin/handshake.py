"""The stand-in's side of Clerk's handshake, so `make run` offline goes through the same code path.

Frontend API (`/dev-clerk/fapi/v1/client/handshake`, a browser navigation): read who the browser is
from the stand-in's own client cookie, keep the cookies Clerk would set under a one-use nonce, and
send the browser back to `redirect_url` with the nonce in a cookie (as production Clerk does).
Backend API (`GET /dev-clerk/v1/clients/handshake_payload?nonce=…`, secret key required by the
blueprint): `{"directives": [Set-Cookie values]}`, once per nonce. The Frontend API lives under
`/fapi` because Clerk serves it from another host than the Backend API: no secret key there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app, jsonify, redirect, request

from devtools.clerk_standin import bp, routes
from shop.clerk.handshake import NONCE
from shop.clerk.request_auth import CLIENT_UAT_COOKIE, SESSION_COOKIE

NONCE_LIFETIME = 300  # seconds: the browser comes straight back
NONCE_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,128}")
YEAR = 365 * 86400


def _nonce_path(nonce: str) -> Path:
    folder = Path(current_app.config["SHOP_DEV_CLERK_DIR"]) / "handshakes"
    folder.mkdir(exist_ok=True)
    return folder / f"{hashlib.sha256(nonce.encode()).hexdigest()}.json"


def _forget_stale_nonces() -> None:
    """Nonces whose browser never came back."""
    folder = Path(current_app.config["SHOP_DEV_CLERK_DIR"]) / "handshakes"
    for path in folder.glob("*.json"):
        try:
            if time.time() - path.stat().st_mtime > NONCE_LIFETIME:
                path.unlink()
        except FileNotFoundError:
            pass


def _take(nonce: str) -> list[str] | None:
    """The directives kept under `nonce`, once: a replayed or stale nonce is unknown."""
    if not NONCE_SHAPE.fullmatch(nonce):
        return None
    path = _nonce_path(nonce)
    claimed = path.with_suffix(f".{secrets.token_hex(4)}.taken")
    try:
        os.replace(path, claimed)  # atomic: two requests with one nonce cannot both have it
    except FileNotFoundError:
        return None
    try:
        if time.time() - claimed.stat().st_mtime > NONCE_LIFETIME:
            return None
        return json.loads(claimed.read_text())
    finally:
        claimed.unlink(missing_ok=True)


def _directives() -> list[str]:
    """The cookies Clerk's handshake sets on the app's domain: a fresh session, or signed out."""
    clear_nonce = f"{NONCE}=; Path=/; Max-Age=0; SameSite=Lax"
    signed_in = routes._signed_in_user()
    if signed_in is None:
        return [
            f"{SESSION_COOKIE}=; Path=/; Max-Age=0; SameSite=Lax",
            f"{CLIENT_UAT_COOKIE}=0; Path=/; Max-Age={YEAR}; SameSite=Lax",
            clear_nonce,
        ]
    # The client's time is read before the token is minted: a token issued in an earlier second than
    # __client_uat is refused as older than the client (and /api/me said 401 after a handshake under load).
    client_updated_at = int(time.time())
    token = routes._session_token(*signed_in)
    return [
        f"{SESSION_COOKIE}={token}; Path=/; SameSite=Lax",
        f"{CLIENT_UAT_COOKIE}={client_updated_at}; Path=/; Max-Age={YEAR}; SameSite=Lax",
        clear_nonce,
    ]


@bp.get("/fapi/v1/client/handshake")
def client_handshake():
    redirect_url = request.args.get("redirect_url", "")
    target = urlsplit(redirect_url)
    if target.scheme not in ("http", "https") or target.netloc != request.host:
        # Clerk only returns to the instance's allowed origins; the stand-in's is the app itself.
        return routes._clerk_error(
            400, "invalid_redirect_url", "is invalid", "redirect_url must be an address on this site."
        )
    if request.args.get("format") != "nonce":
        return routes._clerk_error(400, "unsupported_format", "is invalid", "The stand-in only answers format=nonce.")
    nonce = secrets.token_urlsafe(32)
    _nonce_path(nonce).write_text(json.dumps(_directives()))
    _forget_stale_nonces()
    response = redirect(redirect_url, code=307)
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(NONCE, nonce, max_age=NONCE_LIFETIME, path="/", httponly=True, samesite="Lax")
    return response


@bp.get("/v1/clients/handshake_payload")
def api_handshake_payload():
    directives = _take(request.args.get("nonce", ""))
    if directives is None:
        return routes._clerk_error(404, "resource_not_found", "not found", "No handshake payload for this nonce.")
    return jsonify(directives=directives)
