"""Security headers on every response, and cookie flags for production.

The Content-Security-Policy allows exactly what clerk-js 6 and @clerk/ui 1 load, as Clerk's CSP
guide lists it: scripts and API calls to the instance's Frontend API host; Cloudflare's bot-protection
challenge (Turnstile, script and frame) that Clerk's sign-up embeds; Clerk's abuse and fraud
protection on `*.protect.clerk.com` (script and frame, and connections on any port: a source without
a port matches 443 only); Clerk's image host; workers from blob:; inline styles (clerk-js styles its
components at run time). Development instances (`pk_test_…`) also send telemetry to
clerk-telemetry.com. Our own pages use no inline script at all. With the local stand-in, no
third-party host is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from flask import Flask, Response, current_app, g, request, session
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from werkzeug.middleware.proxy_fix import ProxyFix

from shop.auth.session import SKIPPED_ENDPOINTS
from shop.clerk.request_auth import CLIENT_UAT_COOKIE, SESSION_COOKIE

CLERK_IMAGE_HOST = "https://img.clerk.com"
CLOUDFLARE_CHALLENGES = "https://challenges.cloudflare.com"
CLERK_PROTECT = "https://*.protect.clerk.com"
CLERK_TELEMETRY = "https://clerk-telemetry.com"
HSTS = "max-age=31536000; includeSubDomains"


def content_security_policy(frontend_api_host: str | None, *, development_instance: bool = False) -> str:
    """The policy for a Clerk instance at `frontend_api_host` (None: the stand-in, nothing third-party)."""
    clerk = [f"https://{frontend_api_host}"] if frontend_api_host else []
    bot_checks = [CLOUDFLARE_CHALLENGES, CLERK_PROTECT] if frontend_api_host else []
    connect = [*clerk, f"{CLERK_PROTECT}:*"] if frontend_api_host else []
    telemetry = [CLERK_TELEMETRY] if frontend_api_host and development_instance else []
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *clerk, *bot_checks],
        "connect-src": ["'self'", *connect, *telemetry],
        "img-src": ["'self'", "data:", CLERK_IMAGE_HOST],
        "style-src": ["'self'", "'unsafe-inline'"],
        "worker-src": ["'self'", "blob:"],
        "frame-src": bot_checks or ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def register(app: Flask) -> None:
    production = app.config["SHOP_PRODUCTION"]
    if production:
        app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    publishable_key = app.config.get("CLERK_PUBLISHABLE_KEY") or ""
    policy = content_security_policy(
        app.config.get("CLERK_FRONTEND_API"), development_instance=publishable_key.startswith("pk_test_")
    )

    defaults = [
        ("Content-Security-Policy", policy),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("X-Frame-Options", "DENY"),
    ]
    if production:
        defaults.append(("Strict-Transport-Security", HSTS))
    by_lowercase_name = [(name.lower(), name, value) for name, value in defaults]

    @app.after_request
    def security_headers(response: Response) -> Response:
        """Each default header a view did not set itself. One pass over the response's headers
        instead of a `setdefault` each, every one a scan of them all (bench/README.md, "Against the
        floor")."""
        present = {name.lower() for name, _ in response.headers}
        for lowercase, name, value in by_lowercase_name:
            if lowercase not in present:
                response.headers.add(name, value)
        return response

    app.session_interface = SessionCookieSignedByOneSerializer()
    register_private_caching(app)
    trust_forwarded_headers_from_the_proxy(app)


class SessionCookieSignedByOneSerializer(SecureCookieSessionInterface):
    """Flask's signed-cookie session, its signing serializer built once per key rather than on every
    request (Flask builds one even for a request without a cookie, and building one serializes a
    test value; bench/README.md, "Against the floor"). A new SECRET_KEY or fallback list builds a
    new one."""

    _built: tuple[tuple[object, ...], URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        built = self._built
        if built is None or built[0] != keys:
            built = self._built = (keys, super().get_signing_serializer(app))
        return built[1]


# -- Responses that depend on who is asking ---------------------------------------------------------


def carries_identity() -> bool:
    """Whether this request's answer is its sender's own: signed in, any Clerk credential sent
    (even an expired one: the refresh page), or a Flask session (a form's CSRF token, the cart
    kept for after sign-in) sent or set. (Flask's `session.accessed` is always true: no use.)"""
    if g.get("user") is not None or "Authorization" in request.headers or session.modified:
        return True
    own_cookies = (SESSION_COOKIE, CLIENT_UAT_COOKIE, current_app.config["SESSION_COOKIE_NAME"])
    return any(name.startswith(own_cookies) for name in request.cookies)


def register_private_caching(app: Flask) -> None:
    """Every answer that reads who is signed in varies on the credentials; one given to a signed-in
    user (or one carrying its sender's CSRF token) is stored by no cache, shared or the browser's."""

    @app.after_request
    def private_caching(response: Response) -> Response:
        if request.endpoint in SKIPPED_ENDPOINTS:  # static files, webhooks, health: nobody's own
            return response
        response.vary.update(("Cookie", "Authorization"))
        if carries_identity() and not response.cache_control.no_store:  # no-store already says it all
            response.headers["Cache-Control"] = "private, no-store"
        return response


# -- The client's address, from the proxy in front ---------------------------------------------------


class ProxyFixFromTrustedPeers:
    """Werkzeug's ProxyFix (one proxy: X-Forwarded-For and -Proto), applied only when the request
    comes from a trusted proxy's address: anyone else reaching gunicorn directly could write those
    headers. nginx (deploy/nginx/shop.conf) replaces X-Forwarded-For with the address it sees."""

    def __init__(self, wsgi_app: Any, trusted: Sequence[IPv4Network | IPv6Network]):
        self.direct = wsgi_app
        self.proxied = ProxyFix(wsgi_app, x_for=1, x_proto=1)
        self.trusted = tuple(trusted)

    def from_trusted_peer(self, address: str) -> bool:
        try:
            peer = ip_address(address)
        except ValueError:  # a Unix socket has no address
            return False
        return any(peer in network for network in self.trusted)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.from_trusted_peer(environ.get("REMOTE_ADDR", "")):
            return self.proxied(environ, start_response)
        return self.direct(environ, start_response)


def trust_forwarded_headers_from_the_proxy(app: Flask) -> None:
    wrapped = ProxyFixFromTrustedPeers(app.wsgi_app, app.config["FORWARDED_ALLOW_IPS"])
    app.wsgi_app = wrapped  # type: ignore[method-assign]  # Flask's documented way to add WSGI middleware
