"""The stand-in's HTTP face: Backend API (`/dev-clerk/v1/…`), JWKS, and the browser calls of the shim."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import requests
from flask import Response, abort, current_app, jsonify, request
from itsdangerous import BadSignature, URLSafeSerializer
from svix.webhooks import Webhook

from shop.clerk.keys import cookie_suffix
from shop.clerk.standin import ISSUER, KEY_ID, PUBLISHABLE_KEY, bp
from shop.clerk.standin.keys import jwks, mint
from shop.clerk.standin.store import UserStore
from shop.clerk.tokens import CLIENT_UAT_COOKIE, SESSION_COOKIE
from shop.extensions import csrf

log = logging.getLogger(__name__)

CLIENT_COOKIE = "__standin_client"  # Clerk keeps this on its own domain; ours is HttpOnly
YEAR = 365 * 86400
MAX_NAME = 100
csrf.exempt(bp)  # browser calls must be JSON (a cross-site form cannot send that without CORS)


def store() -> UserStore:
    return UserStore(current_app.config["SHOP_DEV_CLERK_DIR"])


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="clerk-standin-client")


def _clerk_error(status: int, code: str, message: str):
    return jsonify(errors=[{"message": message, "long_message": message, "code": code}]), status


@bp.before_request
def check_request():
    if request.path.startswith("/dev-clerk/v1/"):
        expected = f"Bearer {current_app.config['STANDIN_SECRET_KEY']}"
        if not secrets.compare_digest(request.headers.get("Authorization", ""), expected):
            return _clerk_error(401, "clerk_key_invalid", "The provided Clerk Secret Key is invalid.")
    elif request.method == "POST" and not request.is_json:
        return jsonify(error="JSON only"), 415
    return None


# --- Backend API ------------------------------------------------------------------------------------------


@bp.get("/v1/users/<user_id>")
def api_get_user(user_id: str):
    user = store().get(user_id)
    if user is None:
        return _clerk_error(404, "resource_not_found", "not found")
    return jsonify(user)


@bp.get("/v1/users")
def api_list_users():
    users = store().all()
    if request.args.get("order_by", "-created_at").startswith("-"):
        users.reverse()
    limit = min(max(request.args.get("limit", 10, type=int), 1), 500)
    offset = max(request.args.get("offset", 0, type=int), 0)
    return Response(json.dumps(users[offset : offset + limit]), mimetype="application/json")


@bp.get("/v1/users/count")
def api_count_users():
    return jsonify(object="total_count", total_count=len(store().all()))


@bp.get("/v1/jwks")
@bp.get("/.well-known/jwks.json")
def api_jwks():
    return jsonify(jwks(current_app.config["STANDIN_PRIVATE_KEY"], KEY_ID))


# --- webhooks, delivered over HTTP to the app's own endpoint ----------------------------------------------


def deliver_webhook(kind: str, data: dict[str, Any]) -> None:
    """Sign like Svix and POST to /api/webhooks/clerk, off the request thread, retrying a little."""
    body = json.dumps({"object": "event", "type": kind, "data": data, "timestamp": int(time.time() * 1000)})
    secret = current_app.config["CLERK_WEBHOOK_SECRETS"][0]
    url = f"{request.host_url}api/webhooks/clerk"
    svix_id = f"msg_standin_{uuid.uuid4().hex}"

    def send() -> None:
        for attempt in range(3):
            now = datetime.now(UTC)
            headers = {
                "svix-id": svix_id,
                "svix-timestamp": str(int(now.timestamp())),
                "svix-signature": Webhook(secret).sign(svix_id, now, body),
                "content-type": "application/json",
            }
            try:
                response = requests.post(url, data=body, headers=headers, timeout=10)
                if response.ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5 * (attempt + 1))
        log.warning("stand-in: webhook %s %s not delivered", kind, svix_id)

    threading.Thread(target=send, daemon=True).start()


# --- the browser side (what clerk-js does against Clerk's Frontend API) --------------------------------


def _signed_in_user() -> tuple[dict[str, Any], str] | None:
    try:
        client = _serializer().loads(request.cookies.get(CLIENT_COOKIE, ""))
    except BadSignature:
        return None
    user = store().get(client.get("uid", ""))
    return (user, client["sid"]) if user else None


def _session_token(user: dict[str, Any], session_id: str) -> str:
    now = int(time.time())
    claims = {
        "sub": user["id"],
        "sid": session_id,
        "iss": ISSUER,
        "azp": request.host_url.rstrip("/"),
        "iat": now,
        "nbf": now - 5,
        "exp": now + current_app.config["STANDIN_TOKEN_SECONDS"],
        "v": 2,
    }
    return mint(current_app.config["STANDIN_PRIVATE_KEY"], KEY_ID, claims)


def _set_clerk_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    """As clerk-js writes it: readable by scripts, SameSite=Lax, and a copy suffixed for this instance."""
    for cookie in (name, f"{name}_{cookie_suffix(PUBLISHABLE_KEY)}"):
        response.set_cookie(cookie, value, samesite="Lax", path="/", max_age=max_age, secure=request.is_secure)


def _start_client(response: Response, user: dict[str, Any], session_id: str) -> None:
    """What a sign-in sets: the client cookie (Clerk's lives on its own domain; ours is HttpOnly) and `__client_uat`."""
    _set_clerk_cookie(response, CLIENT_UAT_COOKIE, str(int(time.time())), max_age=YEAR)
    response.set_cookie(
        CLIENT_COOKIE,
        _serializer().dumps({"uid": user["id"], "sid": session_id}),
        httponly=True,
        samesite="Lax",
        path="/dev-clerk",
    )


def _set_session_cookie(response: Response, token: str) -> None:
    _set_clerk_cookie(response, SESSION_COOKIE, token)


def _end_client(response: Response) -> None:
    """What a sign-out leaves: no session token, `__client_uat=0`."""
    for name in (SESSION_COOKIE, f"{SESSION_COOKIE}_{cookie_suffix(PUBLISHABLE_KEY)}"):
        response.delete_cookie(name, path="/", samesite="Lax")
    _set_clerk_cookie(response, CLIENT_UAT_COOKIE, "0", max_age=YEAR)


def _public(user: dict[str, Any]) -> dict[str, Any]:
    email = next(iter(user["email_addresses"]), {}).get("email_address")
    return {
        "id": user["id"],
        "firstName": user["first_name"],
        "lastName": user["last_name"],
        "primaryEmailAddress": {"emailAddress": email},
        "imageUrl": user["image_url"],
    }


def _name(value: Any) -> str | None:
    return value.strip()[:MAX_NAME] or None if isinstance(value, str) else None


@bp.post("/sign-in")
def sign_in():
    form = request.get_json(silent=True) or {}
    email = form.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 254 or email != email.strip():
        return jsonify(error="Enter an e-mail address."), 400
    user, created = store().sign_in(email, _name(form.get("first_name")), _name(form.get("last_name")))
    deliver_webhook("user.created" if created else "user.updated", user)
    session_id = f"sess_{uuid.uuid4().hex[:24]}"
    response = jsonify(user=_public(user))
    _start_client(response, user, session_id)
    _set_session_cookie(response, _session_token(user, session_id))
    return response


@bp.get("/me")
def me():
    signed_in = _signed_in_user()
    seconds = current_app.config["STANDIN_TOKEN_SECONDS"]
    if signed_in is None:
        return jsonify(user=None, session_id=None, token_seconds=seconds)
    user, session_id = signed_in
    return jsonify(user=_public(user), session_id=session_id, token_seconds=seconds)


@bp.post("/tokens")
def refresh_token():
    signed_in = _signed_in_user()
    if signed_in is None:
        response = jsonify(error="Signed out")
        response.status_code = 401
        _end_client(response)
        return response
    token = _session_token(*signed_in)
    response = jsonify(jwt=token)
    _set_session_cookie(response, token)
    return response


@bp.post("/sign-out")
def sign_out():
    response = jsonify(ok=True)
    _end_client(response)
    response.delete_cookie(CLIENT_COOKIE, path="/dev-clerk")
    return response


@bp.post("/profile")
def update_profile():
    signed_in = _signed_in_user()
    if signed_in is None:
        abort(401)
    form = request.get_json(silent=True) or {}
    user = store().update_names(signed_in[0]["id"], _name(form.get("first_name")), _name(form.get("last_name")))
    deliver_webhook("user.updated", user)
    return jsonify(user=_public(user))


@bp.post("/delete-account")
def delete_account():
    signed_in = _signed_in_user()
    if signed_in is None:
        abort(401)
    user_id = signed_in[0]["id"]
    store().delete(user_id)
    deliver_webhook("user.deleted", {"object": "user", "id": user_id, "deleted": True})
    return sign_out()
