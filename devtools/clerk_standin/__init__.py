"""The local Clerk stand-in (SHOP_DEV_AUTH=1, debug or testing only).

So the whole flow runs on a laptop with no Clerk account and no tunnel, and browser tests can
sign in, this package plays Clerk's part over real HTTP: it mints RS256 session cookies with a
local key, serves their JWKS, answers the Backend API calls the app makes (`/dev-clerk/v1/…`),
and delivers Svix-signed webhooks to the app's own `/api/webhooks/clerk`. In the browser,
`static/js/clerk-standin.js` offers the part of clerk-js our templates use.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from flask import Blueprint, Flask, current_app, request

from shop.clerk.api import ClerkAPI
from shop.generated_secrets import generated_once

bp = Blueprint("standin", __name__, url_prefix="/dev-clerk")
FRONTEND_API_HOST = "clerk-standin.localhost"
ISSUER = f"https://{FRONTEND_API_HOST}"
# A development key for that host, so cookies get clerk-js's suffix (`__session_<suffix>`) as with Clerk.
PUBLISHABLE_KEY = "pk_test_" + base64.b64encode(f"{FRONTEND_API_HOST}$".encode()).decode().rstrip("=")
KEY_ID = "ins_standin"
TOKEN_SECONDS = 60  # Clerk's session-token lifetime; tests shorten it with app.config["STANDIN_TOKEN_SECONDS"]


def configure(app: Flask) -> None:
    """Point the app's Clerk settings at the stand-in: its key, its issuer, a webhook secret."""
    from devtools.clerk_standin.keys import private_key_pem, public_key_pem

    folder = Path(app.config["SHOP_DEV_CLERK_DIR"] or Path(app.instance_path) / "dev-clerk")
    folder.mkdir(parents=True, exist_ok=True)
    app.config["SHOP_DEV_CLERK_DIR"] = folder
    private_pem = generated_once(folder / "private-key.pem", private_key_pem)
    app.config["STANDIN_PRIVATE_KEY"] = private_pem
    app.config["STANDIN_SECRET_KEY"] = generated_once(
        folder / "secret-key", lambda: f"sk_test_standin{secrets.token_hex(16)}"
    )
    if not app.config["CLERK_WEBHOOK_SECRETS"]:
        app.config["CLERK_WEBHOOK_SECRETS"] = [
            generated_once(folder / "webhook-secret", lambda: "whsec_" + secrets.token_urlsafe(24).replace("-", "+"))
        ]
    # The stand-in replaces Clerk entirely while it is on (no Frontend API host: no third party in pages).
    app.config.setdefault("STANDIN_TOKEN_SECONDS", TOKEN_SECONDS)
    app.config.update(
        CLERK_PUBLISHABLE_KEY=PUBLISHABLE_KEY,
        CLERK_FRONTEND_API=None,
        CLERK_JWT_KEY=public_key_pem(private_pem),
        CLERK_ISSUER=ISSUER,
        CLERK_AUTHORIZED_PARTIES=[],
    )
    # shop.auth.session asks for the Backend API through this hook: shop never imports devtools.
    app.extensions["clerk_backend_api"] = standin_api
    app.register_blueprint(bp)


def standin_api() -> ClerkAPI:
    """The Backend API client, pointed at the stand-in on this very server (one per host it is reached by)."""
    base_url = f"{request.host_url}dev-clerk/v1"
    clients = current_app.extensions.setdefault("standin_api", {})
    if base_url not in clients:
        clients[base_url] = ClerkAPI(base_url, current_app.config["STANDIN_SECRET_KEY"], retries=1)
    return clients[base_url]


from devtools.clerk_standin import handshake, routes  # noqa: E402,F401
