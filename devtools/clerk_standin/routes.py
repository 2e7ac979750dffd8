"""The stand-in's HTTP face: Backend API (`/dev-clerk/v1/…`), JWKS, and the browser calls of the shim."""

from __future__ import annotations

import base64
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
from markupsafe import escape
from svix.webhooks import Webhook

from devtools.clerk_standin import ISSUER, KEY_ID, PUBLISHABLE_KEY, bp
from devtools.clerk_standin.keys import jwks, mint
from devtools.clerk_standin.sessions import SessionStore
from devtools.clerk_standin.store import MetadataTooLarge, UserStore
from shop.clerk.keys import cookie_suffix
from shop.clerk.request_auth import CLIENT_UAT_COOKIE, SESSION_COOKIE
from shop.extensions import csrf

log = logging.getLogger(__name__)

CLIENT_COOKIE = "__standin_client"  # Clerk keeps this on its own domain; ours is HttpOnly
YEAR = 365 * 86400
MAX_NAME = 100
csrf.exempt(bp)  # browser calls must be JSON (a cross-site form cannot send that without CORS)


def store() -> UserStore:
    return UserStore(current_app.config["SHOP_DEV_CLERK_DIR"])


def sessions() -> SessionStore:
    return SessionStore(current_app.config["SHOP_DEV_CLERK_DIR"])


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="clerk-standin-client")


def _clerk_error(status: int, code: str, message: str, long_message: str, **meta: str) -> tuple[Response, int]:
    """Clerk's error body (OpenAPI `ClerkErrors`), with a trace id as Clerk sends."""
    error: dict[str, Any] = {"message": message, "long_message": long_message, "code": code}
    if meta:
        error["meta"] = meta
    return jsonify(errors=[error], clerk_trace_id=uuid.uuid4().hex), status


def _invalid_param(name: str, long_message: str) -> tuple[Response, int]:
    return _clerk_error(422, "form_param_value_invalid", "is invalid", long_message, param_name=name)


@bp.before_request
def check_request():
    if request.path.startswith("/dev-clerk/v1/"):
        expected = f"Bearer {current_app.config['STANDIN_SECRET_KEY']}"
        if not secrets.compare_digest(request.headers.get("Authorization", ""), expected):
            message = "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct."
            return _clerk_error(401, "clerk_key_invalid", message, message)
    elif request.method in ("POST", "PATCH") and not request.is_json:
        return jsonify(error="JSON only"), 415
    return None


# --- Backend API ------------------------------------------------------------------------------------------

ORDER_FIELDS = {
    "created_at": lambda u: u["created_at"],
    "updated_at": lambda u: u["updated_at"],
    "last_sign_in_at": lambda u: u["last_sign_in_at"] or 0,
    "last_active_at": lambda u: u["last_active_at"] or 0,
    "email_address": lambda u: _emails(u)[0] if _emails(u) else "",
    "first_name": lambda u: (u["first_name"] or "").lower(),
    "last_name": lambda u: (u["last_name"] or "").lower(),
    "username": lambda u: u["username"] or "",
    "phone_number": lambda u: "",
    "web3wallet": lambda u: "",
}
MAX_FILTER_VALUES = 100


def _emails(user: dict[str, Any]) -> list[str]:
    return [address["email_address"].lower() for address in user["email_addresses"]]


def _filtered_users() -> list[dict[str, Any]] | tuple[Response, int]:
    """The users `GET /users` and `/users/count` select, oldest first; or Clerk's 422 for a bad filter."""
    users = store().all()
    emails = {e.lower() for e in request.args.getlist("email_address")}
    user_ids = request.args.getlist("user_id")
    for name, values in (("email_address", emails), ("user_id", user_ids)):
        if len(values) > MAX_FILTER_VALUES:
            return _invalid_param(name, f"{name} accepts up to {MAX_FILTER_VALUES} values.")
    if emails:
        users = [u for u in users if emails.intersection(_emails(u))]
    included = {i.removeprefix("+") for i in user_ids if not i.startswith("-")}
    excluded = {i[1:] for i in user_ids if i.startswith("-")}
    if included:
        users = [u for u in users if u["id"] in included]
    users = [u for u in users if u["id"] not in excluded]
    query = request.args.get("query", "").strip().lower()
    if query:
        users = [
            u
            for u in users
            if any(
                query in text
                for text in [
                    u["id"].lower(),
                    *_emails(u),
                    *((u[k] or "").lower() for k in ("first_name", "last_name", "username")),
                ]
            )
        ]
    return users


def _int_param(name: str, default: int, low: int, high: int | None) -> int | tuple[Response, int]:
    raw = request.args.get(name)
    if raw is None:
        return default
    digits = raw.removeprefix("-")
    if not digits.isascii() or not digits.isdigit() or len(digits) > 9:  # not "5_0", " 5", "+5" or 10**5000
        return _clerk_error(
            422, "form_param_format_invalid", "is invalid", f"{name} must be an integer.", param_name=name
        )
    value = int(raw)
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"greater than or equal to {low}"
        return _invalid_param(name, f"{name} must be {bounds}.")
    return value


@bp.get("/v1/users/<user_id>")
def api_get_user(user_id: str):
    user = store().get(user_id)
    if user is None:
        return _clerk_error(404, "resource_not_found", "not found", f"No user was found with id {user_id}")
    return jsonify(user)


@bp.get("/v1/users")
def api_list_users():
    users = _filtered_users()
    if isinstance(users, tuple):
        return users
    limit = _int_param("limit", 10, 1, 500)
    offset = _int_param("offset", 0, 0, None)
    if isinstance(limit, tuple):
        return limit
    if isinstance(offset, tuple):
        return offset
    order_by = request.args.get("order_by", "-created_at")
    field = order_by.lstrip("+-")
    if field not in ORDER_FIELDS or order_by.count("-") + order_by.count("+") > 1:
        return _invalid_param("order_by", f"{order_by} does not match one of the allowed values for parameter order_by")
    users.sort(key=lambda u: (ORDER_FIELDS[field](u), u["created_at"], u["id"]), reverse=order_by.startswith("-"))
    return Response(json.dumps(users[offset : offset + limit]), mimetype="application/json")


@bp.get("/v1/users/count")
def api_count_users():
    users = _filtered_users()
    if isinstance(users, tuple):
        return users
    return jsonify(object="total_count", total_count=len(users))


@bp.route("/v1/", defaults={"unknown": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@bp.route("/v1/<path:unknown>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def api_unknown(unknown: str):
    """What Clerk answers for a path it does not serve: JSON, never an HTML page."""
    return _clerk_error(404, "resource_not_found", "not found", "Resource not found")


@bp.get("/v1/jwks")
@bp.get("/.well-known/jwks.json")
def api_jwks():
    return jsonify(jwks(current_app.config["STANDIN_PRIVATE_KEY"], KEY_ID))


# --- webhooks, delivered over HTTP to the app's own endpoint ----------------------------------------------


def deliver_webhook(kind: str, data: dict[str, Any]) -> None:
    """Sign like Svix and POST to /api/webhooks/clerk, off the request thread, retrying a little."""
    if kind.startswith("user.") and "private_metadata" in data:
        data = {**data, "private_metadata": None}  # Clerk's webhooks never carry it (its Backend API does)
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


def _client() -> dict[str, Any] | None:
    """The browser's client cookie (on Clerk's own domain at Clerk): the user and session it holds."""
    try:
        return _serializer().loads(request.cookies.get(CLIENT_COOKIE, ""))
    except BadSignature:
        return None


def _signed_in_user() -> tuple[dict[str, Any], str] | None:
    """Who this browser is signed in as, and the session: only while that session is active (a
    revoked or ended one gets no fresh token, from the refresh or the handshake alike)."""
    client = _client()
    if client is None or not sessions().is_active(client.get("sid", "")):
        return None
    user = store().get(client.get("uid", ""))
    return (user, client["sid"]) if user else None


def _end_session(session_id: str, status: str) -> dict[str, Any] | None:
    """End a session as Clerk does and tell the app with the signed `session.<status>` webhook."""
    session = sessions().end(session_id, status)
    if session is not None:
        deliver_webhook(f"session.{status}", session)
    return session


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
    emails = user["email_addresses"]
    email = emails[0].get("email_address") if emails else None
    return {
        "id": user["id"],
        "firstName": user["first_name"],
        "lastName": user["last_name"],
        "primaryEmailAddress": {"emailAddress": email},
        "imageUrl": user["image_url"],
        "publicMetadata": user["public_metadata"],
        "unsafeMetadata": user["unsafe_metadata"],
    }


def _name(value: Any) -> str | None:
    return value.strip()[:MAX_NAME] or None if isinstance(value, str) else None


def _avatar_url(email: str, first_name: str | None, last_name: str | None) -> str:
    """Like Clerk's default image (`https://img.clerk.com/<base64 JSON>`), served by the stand-in for offline use."""
    initials = "".join(name[0] for name in (first_name, last_name) if name) or email[0]
    descriptor = json.dumps({"type": "default", "iid": KEY_ID, "initials": initials.upper()}, separators=(",", ":"))
    return f"{request.host_url}dev-clerk/img/{base64.urlsafe_b64encode(descriptor.encode()).decode().rstrip('=')}"


@bp.get("/img/<descriptor>")
def avatar(descriptor: str):
    try:
        decoded = json.loads(base64.urlsafe_b64decode(descriptor + "=" * (-len(descriptor) % 4)))
        initials = "".join(c for c in str(decoded.get("initials", "")) if c.isalnum())[:2] or "?"
    except (ValueError, AttributeError):
        initials = "?"
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        '<rect width="64" height="64" fill="#6c47ff"/><text x="32" y="41" font-family="sans-serif" font-size="26" '
        f'fill="#fff" text-anchor="middle">{escape(initials)}</text></svg>'
    )
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@bp.post("/sign-in")
def sign_in():
    form = request.get_json(silent=True) or {}
    email = form.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 254 or email != email.strip():
        return jsonify(error="Enter an e-mail address."), 400
    first_name, last_name = _name(form.get("first_name")), _name(form.get("last_name"))
    user, created = store().sign_in(email, first_name, last_name, _avatar_url(email, first_name, last_name))
    deliver_webhook("user.created" if created else "user.updated", user)
    session_id = sessions().start(user["id"])["id"]
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
    client = _client()
    if client is not None:
        _end_session(client.get("sid", ""), "ended")
    response = jsonify(ok=True)
    _end_client(response)
    response.delete_cookie(CLIENT_COOKIE, path="/dev-clerk")
    return response


@bp.get("/me/sessions")
def my_sessions():
    """This user's active sessions (clerk-js `user.getSessions()`), for "sign out of that device"."""
    signed_in = _signed_in_user()
    if signed_in is None:
        abort(401)
    return jsonify(sessions=sessions().active_of(signed_in[0]["id"]), current=signed_in[1])


@bp.post("/me/sessions/<session_id>/revoke")
def revoke_my_session(session_id: str):
    """Sign out of another device (clerk-js `session.revoke()`): only one of this user's own sessions."""
    signed_in = _signed_in_user()
    if signed_in is None:
        abort(401)
    session = sessions().get(session_id)
    if session is None or session["user_id"] != signed_in[0]["id"]:
        abort(404)
    return jsonify(_end_session(session_id, "revoked") or session)


@bp.post("/v1/sessions/<session_id>/revoke")
def api_revoke_session(session_id: str):
    """Backend API `POST /v1/sessions/{id}/revoke` (the dashboard's "revoke"): the Session, now revoked."""
    session = sessions().get(session_id)
    if session is None:
        return _clerk_error(404, "resource_not_found", "not found", f"No session was found with id {session_id}")
    return jsonify(_end_session(session_id, "revoked") or session)


@bp.post("/profile")
def update_profile():
    signed_in = _signed_in_user()
    if signed_in is None:
        abort(401)
    form = request.get_json(silent=True) or {}
    user = store().update_names(signed_in[0]["id"], _name(form.get("first_name")), _name(form.get("last_name")))
    if user is None:  # deleted (another tab) since _signed_in_user read it
        abort(401)
    deliver_webhook("user.updated", user)
    return jsonify(user=_public(user))


@bp.patch("/me/metadata")
def update_metadata():
    """clerk-js `user.updateMetadata({unsafeMetadata})`, Clerk's `PATCH /v1/me/metadata`: a deep merge
    into the signed-in user's `unsafe_metadata` (the only one a browser may write), then `user.updated`."""
    signed_in = _signed_in_user()
    if signed_in is None:
        return jsonify(error="Signed out"), 401
    form = request.get_json(silent=True)
    form = form if isinstance(form, dict) else {}
    if unknown := sorted(set(form) - {"unsafe_metadata"}):
        return _clerk_error(
            422,
            "form_param_unknown",
            "is unknown",
            f"{unknown[0]} is not a valid parameter for this request.",
            param_name=unknown[0],
        )
    change = form.get("unsafe_metadata")
    if not isinstance(change, dict):
        return _invalid_param("unsafe_metadata", "unsafe_metadata must be a JSON object.")
    try:
        user = store().update_metadata(signed_in[0]["id"], {"unsafe_metadata": change})
    except MetadataTooLarge:
        return _invalid_param("unsafe_metadata", "unsafe_metadata must be at most 8 KB.")
    if user is None:  # deleted (another tab) since _signed_in_user read it
        return jsonify(error="Signed out"), 401
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
