"""Clerk's handshake: a lapsed session renewed by a redirect through the Frontend API, no interstitial.

Read from `@clerk/backend`'s `authenticateRequest` and `HandshakeService` (3.25.0); docs/sessions.md
draws the sequence and lists where we differ. When the session token cannot decide a page request
(expired, older than `__client_uat`, missing while `__client_uat` says signed in, …):

1. out: 307 to `https://<frontend-api>/v1/client/handshake?redirect_url=…&format=nonce&…`, where
   Clerk's own cookies (on its domain) tell who the browser is;
2. back: Clerk redirects to `redirect_url` with `__clerk_handshake_nonce` (query or cookie); the
   Backend API turns the nonce into Set-Cookie directives (`GET /v1/clients/handshake_payload`);
   they go to the browser and the new `__session` among them decides this very request.

Only probable document navigations are redirected; anything else is simply signed out. The
`__clerk_redirect_count` cookie stops a loop after three redirects in a row. This module decides;
shop.auth.session acts on the decision.

Anyone can send a made-up nonce, and each one would cost a Backend API call made with the secret
key (spending the instance's rate limit), whatever headers the request carries, since the caller
chooses those. So nonce look-ups draw on a per-process NonceBudget (CLERK_HANDSHAKE_NONCE_CAP
calls per CLERK_HANDSHAKE_NONCE_WINDOW_SECONDS, 10 per 10 s): over it the nonce is ignored and
the request's own cookies decide. A look-up that signs a shopper in gives its slot back, so real
handshakes never wear the budget down; only look-ups that resolve nothing (made-up or stale
nonces, Clerk failing) count.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote_plus

from flask import current_app, has_app_context

from shop.clerk import request_auth, tokens
from shop.clerk.api import ClerkAPIError
from shop.clerk.headers import HeaderLookup

log = logging.getLogger(__name__)

API_VERSION = "2026-05-12"  # @clerk/backend 3.25.0's SUPPORTED_BAPI_VERSION
HANDSHAKE = "__clerk_handshake"  # the older format: a signed JWT whose `handshake` claim lists the cookies
NONCE = "__clerk_handshake_nonce"
DEV_BROWSER = "__clerk_db_jwt"
LEGACY_DEV_BROWSER = "__dev_session"
HELP = "__clerk_help"
REDIRECT_COUNT = "__clerk_redirect_count"
MAX_REDIRECTS = 3
DEVELOPMENT_CLOCK_SKEW = 86_400  # Clerk's allowance for a drifting laptop clock, in development only

SIGNED_IN = "signed-in"
SIGNED_OUT = "signed-out"
HANDSHAKE_STATUS = "handshake"

DEV_BROWSER_SYNC = "dev-browser-sync"
DEV_BROWSER_MISSING = "dev-browser-missing"
SESSION_MISSING = "session-token-missing"


@dataclass(frozen=True, slots=True)
class Incoming:
    """The parts of a request Clerk's rules read."""

    method: str
    base_url: str  # scheme, host and path, as the browser asked for them
    query: tuple[tuple[str, str], ...]  # parsed, in order
    headers: HeaderLookup
    cookies: Mapping[str, str]

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.query if key == name), None)

    def url_without(self, *names: str) -> str:
        """This URL with some query parameters removed; the query re-encoded as a browser's URL API does."""
        kept = [(key, value) for key, value in self.query if key not in names]
        return self.base_url + (f"?{form_encode(kept)}" if kept else "")


@dataclass(frozen=True, slots=True)
class Decision:
    status: str  # SIGNED_IN, SIGNED_OUT or HANDSHAKE_STATUS
    session: tokens.Session | None = None
    reason: str | None = None
    location: str | None = None  # a redirect to answer with (the handshake, or the clean URL after one)
    set_cookies: tuple[str, ...] = ()
    # Signed out, but Clerk would have handed off and no handshake is possible here (no secret key).
    needs_refresh: bool = False


class NonceBudget:
    """At most `calls` nonce look-ups in any `window` seconds (a sliding window), across threads.

    A slot is taken before the call, so concurrent requests cannot overshoot, and kept for
    `window` seconds unless given back (the look-up signed a real shopper in). Refusals are
    logged once per window, with how many there were, never once per request."""

    def __init__(self, calls: int = 10, window: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.calls = calls
        self.window = window
        self._clock = clock
        self._taken: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self._refused = 0  # since the last log line
        self._quiet_until = -float("inf")  # no refusal is logged before this time

    def take(self) -> float | None:
        """A slot (its time, to give back) or None when the window's calls are spent."""
        with self._lock:
            now = self._clock()
            while self._taken and self._taken[0] <= now - self.window:
                self._taken.popleft()
            if len(self._taken) < self.calls:
                self._taken.append(now)
                return now
            self._refused += 1
            if now < self._quiet_until:
                return None
            refused, self._refused, self._quiet_until = self._refused, 0, now + self.window
        log.warning(
            "Clerk handshake nonces over the cap (%d look-ups per %gs): ignored, their requests judged by their own "
            "cookies (%d since the last such line). Made-up nonces, someone spending the Backend API quota, are the "
            "usual cause.",
            self.calls,
            self.window,
            refused,
        )
        return None

    def give_back(self, slot: float) -> None:
        with self._lock:
            if slot in self._taken:  # else it already left the window
                self._taken.remove(slot)


BUDGET_EXTENSION = "clerk_handshake_nonce_budget"


def app_nonce_budget() -> NonceBudget | None:
    """The current app's budget, made from its settings on first use: one per process, as each
    gunicorn worker has its own app. None outside an app (a caller that wants a cap passes one)."""
    if not has_app_context():
        return None
    app = current_app
    budget = app.extensions.get(BUDGET_EXTENSION)
    if budget is None:
        budget = app.extensions.setdefault(
            BUDGET_EXTENSION,
            NonceBudget(
                int(app.config.get("CLERK_HANDSHAKE_NONCE_CAP", 10)),
                float(app.config.get("CLERK_HANDSHAKE_NONCE_WINDOW_SECONDS", 10)),
            ),
        )
    return budget


@dataclass(frozen=True, slots=True)
class Handshake:
    """How this app reaches Clerk for a handshake: the Frontend API base URL and the Backend API call."""

    frontend_api: str
    handshake_payload: Callable[[str], list[str]]  # nonce → Set-Cookie directives; raises ClerkAPIError
    nonce_budget: NonceBudget | None = None  # None: the current app's (app_nonce_budget)


def form_encode(pairs: list[tuple[str, str]]) -> str:
    """application/x-www-form-urlencoded exactly as URLSearchParams writes it (`*` kept, `~` escaped)."""
    return "&".join(
        f"{quote_plus(key, safe='*').replace('~', '%7E')}={quote_plus(value, safe='*').replace('~', '%7E')}"
        for key, value in pairs
    )


def is_document_request(method: str, headers: HeaderLookup) -> bool:
    """Probably a page navigation (Clerk's `isRequestEligibleForHandshake`): only those may be redirected."""
    if method != "GET":
        return False  # a form POST says `Sec-Fetch-Dest: document` too, but the handshake only answers GET
    destination = headers.get("Sec-Fetch-Dest")
    if destination in ("document", "iframe"):
        return True
    return not destination and (headers.get("Accept") or "").startswith("text/html")


def _cookie_name(directive: str) -> str:
    return directive.split(";")[0].split("=")[0]


def _cookie_value(directive: str) -> str:
    pair = directive.split(";")[0].split("=")
    return pair[1] if len(pair) > 1 else ""


def _redirect_count(cookies: Mapping[str, str]) -> int:
    value = (cookies.get(REDIRECT_COUNT) or "").strip()
    return int(value) if value.isdigit() and len(value) < 4 else 0


def verify_handshake_token(token: str, verifier: tokens.SessionVerifier) -> list[str]:
    """The `handshake` claim of an older-format handshake token: signed by the instance key, header
    `typ` JWT when present, a session-token category. It has no time claims to check."""
    decoded = tokens.decode(token)
    if decoded is None:
        raise tokens.InvalidToken("the handshake token is not a JWT")
    tokens.check_header(decoded.header)
    tokens.verify_signature(decoded, verifier.signing_key(decoded.header))
    directives = decoded.claims.get("handshake")
    if not isinstance(directives, list):
        return []
    return [directive for directive in directives if isinstance(directive, str)]


def authenticate(
    incoming: Incoming,
    verifier: tokens.SessionVerifier,
    instance: request_auth.Instance,
    handshake: Handshake | None,
) -> Decision:
    """Clerk's decision for one request: signed in, signed out, or a handshake redirect. With
    `handshake` None (no secret key) nothing is resolved or redirected. Never raises."""
    header_token = request_auth.bearer_token(incoming.headers.get("Authorization"))
    cookies = incoming.cookies
    if header_token is None and handshake is not None:
        nonce = incoming.param(NONCE) or cookies.get(NONCE)
        handshake_token = incoming.param(HANDSHAKE) or cookies.get(HANDSHAKE)
        if nonce or handshake_token:
            resolved = _resolve(incoming, verifier, instance, handshake, nonce, handshake_token)
            if resolved is not None:
                return resolved
        # Development instances keep a dev-browser token beside the session. Clerk signs out any
        # request without one; we only send page navigations through the handshake to get it and
        # judge other requests by their session token (docs/sessions.md).
        if not instance.production and is_document_request(incoming.method, incoming.headers):
            if incoming.param(DEV_BROWSER) is not None:
                return _maybe_handshake(incoming, instance, handshake, DEV_BROWSER_SYNC)
            if not _dev_browser(incoming, instance):
                return _maybe_handshake(incoming, instance, handshake, DEV_BROWSER_MISSING)

    auth = request_auth.authenticate_request(verifier, incoming.method, incoming.headers, cookies, instance)
    if auth.session is not None:
        return Decision(SIGNED_IN, auth.session)
    if not auth.needs_refresh:
        return Decision(SIGNED_OUT, reason=auth.reason)
    if handshake is None:
        # The interstitial can only help a browser that says it is signed in at Clerk.
        return Decision(SIGNED_OUT, reason=auth.reason, needs_refresh=auth.client_uat > 0)
    assert auth.reason is not None  # authenticate_request names Clerk's reason whenever a refresh is needed
    return _maybe_handshake(incoming, instance, handshake, auth.reason)


def _dev_browser(incoming: Incoming, instance: request_auth.Instance) -> str | None:
    """The development instance's browser token (clerk-js keeps it in `__clerk_db_jwt`)."""
    name = request_auth.instance_cookie_name(DEV_BROWSER, incoming.cookies, instance)
    return incoming.param(DEV_BROWSER) or incoming.cookies.get(name) or None


def _maybe_handshake(
    incoming: Incoming, instance: request_auth.Instance, handshake: Handshake, reason: str
) -> Decision:
    """Clerk's `handleMaybeHandshakeStatus`: redirect a page navigation, sign anything else out."""
    if not is_document_request(incoming.method, incoming.headers):
        return Decision(SIGNED_OUT, reason=reason)
    count = _redirect_count(incoming.cookies)
    if count >= MAX_REDIRECTS:
        log.warning(
            "Clerk handshake stopped after %d redirects in a row (%s): serving the page signed out. "
            "This usually means the publishable and secret keys belong to different instances.",
            count,
            reason,
        )
        return Decision(SIGNED_OUT, reason=reason)
    cookies = incoming.cookies
    suffixed = request_auth.uses_suffixed_cookies(cookies, instance)
    session = request_auth.session_cookie(cookies, instance) or request_auth.bearer_token(
        incoming.headers.get("Authorization")
    )
    query = [
        ("redirect_url", incoming.url_without(DEV_BROWSER, LEGACY_DEV_BROWSER)),
        ("__clerk_api_version", API_VERSION),
        ("suffixed_cookies", "true" if suffixed else "false"),
        ("__clerk_hs_reason", reason),
        ("format", "nonce"),
    ]
    if session:
        query.append(("__session", session))
    dev_browser = None if instance.production else _dev_browser(incoming, instance)
    if dev_browser:
        query.append((DEV_BROWSER, dev_browser))
    base = handshake.frontend_api if handshake.frontend_api.startswith("http") else f"https://{handshake.frontend_api}"
    location = f"{base.rstrip('/')}/v1/client/handshake?{form_encode(query)}"
    counter = f"{REDIRECT_COUNT}={count + 1}; SameSite=Lax; HttpOnly; Max-Age=2"
    return Decision(HANDSHAKE_STATUS, reason=reason, location=location, set_cookies=(counter,))


def _resolve(
    incoming: Incoming,
    verifier: tokens.SessionVerifier,
    instance: request_auth.Instance,
    handshake: Handshake,
    nonce: str | None,
    handshake_token: str | None,
) -> Decision | None:
    """Clerk's `resolveHandshake`: the cookies Clerk sent back, and who they sign in. None when the
    request should be judged from its own cookies instead (as Clerk does when resolution fails)."""
    slot = budget = None
    if nonce:
        budget = handshake.nonce_budget if handshake.nonce_budget is not None else app_nonce_budget()
        if budget is not None:
            slot = budget.take()
            if slot is None:
                return None  # over the cap: as if no nonce had come (NonceBudget logs it)
        try:
            directives = handshake.handshake_payload(nonce)
        except ClerkAPIError as exc:
            log.warning("Clerk handshake nonce could not be resolved, signed out: %s", exc)
            directives = []
    else:
        try:
            directives = verify_handshake_token(handshake_token or "", verifier)
        except tokens.InvalidToken as exc:
            if not instance.production:
                log.warning("Clerk handshake token refused (%s), signed out: if you switched keys, clear cookies.", exc)
                return Decision(SIGNED_OUT, reason=exc.reason)
            # Another app on the same parent domain may have set it: judge the request's own cookies.
            log.warning("Clerk handshake token refused (%s); judging the request's own cookies.", exc)
            return None

    session_token = ""
    for directive in directives:
        if _cookie_name(directive).startswith(request_auth.SESSION_COOKIE):
            session_token = _cookie_value(directive)
    location = None
    if not instance.production:
        # Development carries the nonce in the URL: send the browser to the clean address once more.
        location = incoming.url_without(HANDSHAKE, HELP, DEV_BROWSER, NONCE)
    set_cookies = tuple(directives)
    if not session_token:
        return Decision(SIGNED_OUT, reason=SESSION_MISSING, location=location, set_cookies=set_cookies)
    try:
        session = verifier.verify(session_token)
    except tokens.ExpiredToken as exc:
        if instance.production:
            log.warning("Clerk handshake gave a session token that does not verify (%s).", exc)
            return None
        log.warning("Clerk handshake token outside its time window (%s): is this machine's clock right?", exc)
        try:
            session = verifier.verify(session_token, clock_skew=DEVELOPMENT_CLOCK_SKEW)
        except tokens.InvalidToken:
            return None
    except tokens.PendingSession as exc:
        # A real session with a task to finish: signed out here, with the reason that sends a page
        # navigation to /sign-in (shop.auth.session) instead of another trip through the handshake.
        return Decision(SIGNED_OUT, reason=exc.reason, location=location, set_cookies=set_cookies)
    except tokens.InvalidToken as exc:
        log.warning("Clerk handshake gave a session token that does not verify (%s).", exc)
        return None
    if slot is not None and budget is not None:
        budget.give_back(slot)  # a real shopper's handshake: not the traffic the cap is for
    return Decision(SIGNED_IN, session, location=location, set_cookies=set_cookies)
