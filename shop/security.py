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

from flask import Flask, Response

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

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", policy)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if production:
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response
