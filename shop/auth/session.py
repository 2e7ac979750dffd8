"""The `before_request` hook: who is signed in, from the Clerk session token, without a network call.

Clerk's decision (shop.clerk.tokens.authenticate_request) follows Clerk's own server SDK; this hook
adds what belongs to pages and to the mirror:
- a valid token → signed in (the mirror row, provisioned from Clerk on the first visit; see
  shop.auth.signed_in for the snapshot kept in `g.user`);
- `__client_uat > 0` with an expired or missing token (or a token older than `__client_uat`) on a
  GET page navigation → the refresh page, whose clerk-js fetches a fresh token and reloads once;
- anything else (forged, malformed, API or non-GET requests) → signed out. Never a 500.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, jsonify, render_template, request

from shop.auth import bp, signed_in
from shop.auth.provisioning import ProvisioningFailed, provision
from shop.clerk import keys, tokens
from shop.clerk.api import ClerkAPI, ClerkAPIError

log = logging.getLogger(__name__)

REFRESH_GUARD_COOKIE = "__shop_refresh"  # set by the refresh page before it reloads: never loop
SKIPPED_ENDPOINTS = frozenset({"static", "webhooks.clerk_webhook", "api.health"})


def session_verifier(app: Flask) -> tokens.SessionVerifier | None:
    if "clerk_verifier" not in app.extensions:
        app.extensions["clerk_verifier"] = tokens.verifier_from_config(app.config)
    return app.extensions["clerk_verifier"]


def cookie_suffix() -> str | None:
    publishable_key = current_app.config.get("CLERK_PUBLISHABLE_KEY")
    return keys.cookie_suffix(publishable_key) if publishable_key else None


def backend_api() -> ClerkAPI:
    """The Backend API for first sign-ins: a shopper is waiting, so one quick retry, not sync's patience."""
    if current_app.config["SHOP_DEV_AUTH"]:
        from shop.clerk.standin import standin_api

        return standin_api()
    if "clerk_provisioning_api" not in current_app.extensions:
        secret_key = current_app.config.get("CLERK_SECRET_KEY")
        if not secret_key:
            raise ClerkAPIError("CLERK_SECRET_KEY is not set, so a first sign-in cannot be fetched from Clerk.")
        current_app.extensions["clerk_provisioning_api"] = ClerkAPI(
            current_app.config["CLERK_API_URL"], secret_key, timeout=5, retries=1, backoff=0.2
        )
    return current_app.extensions["clerk_provisioning_api"]


def is_page_navigation() -> bool:
    if request.method != "GET" or request.path.startswith("/api/"):
        return False
    destination = request.headers.get("Sec-Fetch-Dest")
    if destination is not None:
        return destination == "document"
    return "text/html" in request.headers.get("Accept", "")


@bp.before_app_request
def load_signed_in_user():
    g.user = None
    g.clerk_session = None
    if request.endpoint in SKIPPED_ENDPOINTS:
        return None
    verifier = session_verifier(current_app)
    if verifier is None:
        return None
    auth = tokens.authenticate_request(verifier, request.headers, request.cookies, cookie_suffix())
    session = auth.session
    if session is None:
        if auth.may_refresh and is_page_navigation() and REFRESH_GUARD_COOKIE not in request.cookies:
            return refresh_page()
        return None

    user = signed_in.lookup(session.user_id)
    if user is None:
        try:
            provision(backend_api(), session.user_id)
        except (ProvisioningFailed, ClerkAPIError):
            return account_pending()
        user = signed_in.lookup(session.user_id)
    if user is None or user.is_deleted:
        return None  # a tombstone with a still-valid token is signed out
    g.user = user
    g.clerk_session = session
    return None


def refresh_page():
    """Clerk's interstitial: clerk-js refreshes `__session` and the page reloads once."""
    response = current_app.make_response((render_template("auth/refresh.html"), 401))
    response.headers["Cache-Control"] = "no-store"
    return response


def account_pending():
    """Signed in at Clerk, but Clerk could not tell us who yet: retry shortly, not an error."""
    if request.path.startswith("/api/"):
        response = jsonify(error="Your account is being set up; retry in a few seconds.")
    else:
        response = current_app.make_response(render_template("auth/account_pending.html"))
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    response.headers["Cache-Control"] = "no-store"
    return response
