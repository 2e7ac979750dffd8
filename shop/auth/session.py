"""The `before_request` hook: who is signed in, from the Clerk session token, usually without a network call.

Clerk's decision (shop.clerk.handshake.authenticate, which follows `@clerk/backend`) is one of:
- signed in → the mirror row, provisioned from Clerk on the first visit (see shop.auth.signed_in
  for the snapshot kept in `g.user`);
- a handshake → a 307 to Clerk's Frontend API, which sends the browser back with fresh cookies
  (only for page navigations; docs/sessions.md draws the sequence);
- signed out → anything else (forged, malformed, API or non-GET requests). Never a 500.
Then the shop's own refusals, read with the signed-in user's row in one SELECT on every request:
- a session Clerk revoked, ended or removed (shop.revoked_sessions) → signed out;
- a banned user (Clerk's `banned`) → signed out, with one sentence saying the account is
  suspended (pages), or 403 JSON (the API); their cart and orders stay, and lifting the ban
  lets them straight back;
- a session with a task to finish (`sts: "pending"`) → a page navigation goes to /sign-in, where
  Clerk's component shows the task, and comes back to the page it asked for; the API answers 401.
Cookies Clerk's handshake sends back are passed on to the browser with whatever the page answers.
Without a secret key a handshake cannot be resolved, so the refresh page (an interstitial whose
clerk-js refreshes the cookie and reloads once) stands in for it.
"""

from __future__ import annotations

import logging

import werkzeug
from flask import Flask, Response, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for

from shop.auth import bp, signed_in
from shop.auth.provisioning import ProvisioningFailed, provision
from shop.auth.redirects import current_page, return_path
from shop.clerk import handshake, keys, request_auth, tokens
from shop.clerk.api import ClerkAPI, ClerkAPIError
from shop.errors import wants_json

log = logging.getLogger(__name__)

REFRESH_GUARD_COOKIE = "__shop_refresh"  # set by the refresh page before it reloads: never loop
# Nobody's own: static files, uploaded product images (cached by everyone alike), webhooks, health.
SKIPPED_ENDPOINTS = frozenset({"static", "store.product_image", "webhooks.clerk_webhook", "api.health"})
SKIPPED_BLUEPRINTS = frozenset({"standin"})  # the local stand-in plays Clerk's own hosts
SUSPENDED = "Your account is suspended; contact the shop if you think this is a mistake."
PENDING_TASK = "Finish signing in first: your account has a step to complete on the sign-in page."
# Where a session with a task to finish may go without being sent to /sign-in (it is that page, or leaves).
PENDING_ALLOWED_ENDPOINTS = frozenset({"auth.sign_in", "auth.sign_out"})


def session_verifier(app: Flask) -> tokens.SessionVerifier | None:
    if "clerk_verifier" not in app.extensions:
        app.extensions["clerk_verifier"] = tokens.verifier_from_config(app.config)
    return app.extensions["clerk_verifier"]


def cookie_suffix() -> str | None:
    publishable_key = current_app.config.get("CLERK_PUBLISHABLE_KEY")
    return keys.cookie_suffix(publishable_key) if publishable_key else None


def clerk_instance() -> request_auth.Instance:
    config = current_app.config
    if config["SHOP_DEV_AUTH"]:
        # The stand-in (devtools/clerk_standin, which set CLERK_ISSUER to itself) behaves as a production
        # instance: no dev-browser token, the nonce in a cookie.
        return request_auth.Instance(frontend_api_host=config["CLERK_ISSUER"].removeprefix("https://"), production=True)
    publishable_key = config.get("CLERK_PUBLISHABLE_KEY")
    return request_auth.Instance(
        frontend_api_host=config.get("CLERK_FRONTEND_API"),
        cookie_suffix=cookie_suffix(),
        production=bool(publishable_key and keys.is_live(publishable_key)),
    )


def handshake_route() -> handshake.Handshake | None:
    """Where this app's handshakes go; None when none can be resolved (no secret key, or no Frontend API)."""
    config = current_app.config
    if config["SHOP_DEV_AUTH"]:
        frontend_api = f"{request.host_url}dev-clerk/fapi"  # devtools/clerk_standin/handshake.py
    elif config.get("CLERK_SECRET_KEY") and config.get("CLERK_FRONTEND_API"):
        frontend_api = f"https://{config['CLERK_FRONTEND_API']}"
    else:
        return None
    return handshake.Handshake(frontend_api, lambda nonce: backend_api().handshake_payload(nonce))


def backend_api() -> ClerkAPI:
    """The Backend API for first sign-ins and handshakes: a shopper is waiting, so one quick retry."""
    if current_app.config["SHOP_DEV_AUTH"]:
        return current_app.extensions["clerk_backend_api"]()  # the stand-in's, registered by devtools/clerk_standin
    if "clerk_provisioning_api" not in current_app.extensions:
        secret_key = current_app.config.get("CLERK_SECRET_KEY")
        if not secret_key:
            raise ClerkAPIError("CLERK_SECRET_KEY is not set, so a first sign-in cannot be fetched from Clerk.")
        current_app.extensions["clerk_provisioning_api"] = ClerkAPI(
            current_app.config["CLERK_API_URL"], secret_key, timeout=5, retries=1, backoff=0.2
        )
    return current_app.extensions["clerk_provisioning_api"]


def incoming_request() -> handshake.Incoming:
    return handshake.Incoming(
        method=request.method,
        base_url=request.base_url,
        query=tuple(request.args.items(multi=True)),
        headers=request.headers,
        cookies=request.cookies,
    )


@bp.before_app_request
def load_signed_in_user():
    g.user = None
    g.clerk_set_cookies = ()
    if request.endpoint in SKIPPED_ENDPOINTS or request.blueprint in SKIPPED_BLUEPRINTS:
        return None
    verifier = session_verifier(current_app)
    if verifier is None:
        return None
    decision = handshake.authenticate(incoming_request(), verifier, clerk_instance(), handshake_route())
    g.clerk_set_cookies = decision.set_cookies
    if decision.location is not None:
        return clerk_redirect(decision.location)
    clerk_session = decision.session
    if clerk_session is None:
        if decision.reason == tokens.PENDING:
            return session_task_pending()
        if decision.needs_refresh and may_show_refresh_page():
            return refresh_page()
        return None

    user = signed_in.lookup(clerk_session.user_id, clerk_session.session_id)
    if user is None:
        try:
            provision(backend_api(), clerk_session.user_id)
        except (ProvisioningFailed, ClerkAPIError):
            return account_pending()
        user = signed_in.lookup(clerk_session.user_id, clerk_session.session_id)
    if user is None or user.is_deleted or user.session_revoked:
        return None  # a tombstone, or a session Clerk ended, with a still-valid token is signed out
    if user.banned:
        return account_suspended()
    g.user = user
    return None


@bp.after_app_request
def pass_on_clerk_cookies(response: Response) -> Response:
    """The cookies a handshake brought back reach the browser with whatever the page answered;
    no cache may keep an answer that carries someone's session."""
    directives = g.get("clerk_set_cookies", ())
    for directive in directives:
        response.headers.add("Set-Cookie", directive)
    if directives:
        response.headers["Cache-Control"] = "no-store"
    return response


def clerk_redirect(location: str) -> werkzeug.Response:
    """307 keeps the method (always GET here); no-store, or Chrome replays a cached redirect forever."""
    response = redirect(location, code=307)
    response.headers["Cache-Control"] = "no-store"
    return response


def may_show_refresh_page() -> bool:
    return (
        handshake.is_document_request(request.method, request.headers)
        and not wants_json()
        and REFRESH_GUARD_COOKIE not in request.cookies
    )


def refresh_page():
    """Clerk's interstitial: clerk-js refreshes `__session` and the page reloads once."""
    response = current_app.make_response((render_template("auth/refresh.html", reload_url=current_page()), 401))
    response.headers["Cache-Control"] = "no-store"
    return response


def account_suspended():
    """Banned at Clerk: the API refuses (403); a page is served signed out, saying why once."""
    if wants_json():
        return _no_store(jsonify(error=SUSPENDED), 403)
    _flash_once(SUSPENDED, "error")
    return None


def session_task_pending():
    """A session Clerk holds back until a task is done: a page navigation goes to /sign-in (Clerk's
    component shows the task, then returns to the page); the API answers 401; anything else is
    served signed out (a form's POST then asks to sign in, as for any lapsed session)."""
    if wants_json():
        return _no_store(jsonify(error=PENDING_TASK), 401)
    if request.endpoint in PENDING_ALLOWED_ENDPOINTS or not handshake.is_document_request(
        request.method, request.headers
    ):
        return None
    _flash_once(PENDING_TASK, "info")
    return _no_store(redirect(url_for("auth.sign_in", next=return_path())), 303)


def _flash_once(message: str, category: str) -> None:
    """A sentence for the next page drawn, once however many requests come before it."""
    if (category, message) not in session.get("_flashes", []):
        flash(message, category)


def _no_store(response: werkzeug.Response, status: int) -> werkzeug.Response:
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def account_pending():
    """Signed in at Clerk, but Clerk could not tell us who yet: retry shortly, not an error."""
    if wants_json():
        response = jsonify(error="Your account is being set up; retry in a few seconds.")
    else:
        response = current_app.make_response(render_template("auth/account_pending.html", retry_url=current_page()))
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    response.headers["Cache-Control"] = "no-store"
    return response
