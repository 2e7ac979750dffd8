"""clerk-js in our pages: which bundles to load, from where, and the options `Clerk.load()` gets.

Since clerk-js 6 (Clerk's "Core 3") the components live in a second bundle, `@clerk/ui`, whose
constructor `Clerk.load({ui: {ClerkUI: window.__internal_ClerkUICtor}})` receives; both are served
by the instance's Frontend API. The majors are pinned here and nowhere else, the way Clerk's own
SDKs ask for them (`@clerk/shared`'s versionSelector turns a package version into its major):
Clerk ships fixes on the major tag, and the browser tests run the exact versions package-lock.json
pins (clerk-js 6.40.0, @clerk/ui 1.34.0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CLERK_JS_MAJOR = 6
CLERK_UI_MAJOR = 1

# The shop's colours (static/css/shop.css) for Clerk's components.
APPEARANCE = {
    "variables": {
        "colorPrimary": "#1f5f5b",
        "colorDanger": "#b3261e",
        "colorText": "#1d2424",
        "borderRadius": "10px",
        "fontFamily": 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
    }
}


def clerk_js_url(frontend_api_host: str) -> str:
    return f"https://{frontend_api_host}/npm/@clerk/clerk-js@{CLERK_JS_MAJOR}/dist/clerk.browser.js"


def clerk_ui_url(frontend_api_host: str) -> str:
    return f"https://{frontend_api_host}/npm/@clerk/ui@{CLERK_UI_MAJOR}/dist/ui.browser.js"


def load_options(*, sign_in_url: str) -> dict[str, Any]:
    """What static/js/shop.js passes to `Clerk.load()` (it adds `ui` itself, from the loaded bundle).

    Telemetry stays Clerk's default: on for development instances (to clerk-telemetry.com, which the
    CSP allows), never sent by production ones.
    """
    return {
        "appearance": APPEARANCE,
        "signInUrl": sign_in_url,
        "signUpUrl": sign_in_url,  # the sign-in component offers sign-up itself
        "afterSignOutUrl": "/",
        "telemetry": {"disabled": False, "debug": False},
    }


def template_context(config: Mapping[str, Any]) -> dict[str, Any]:
    """What base.html needs to start Clerk: the bundles (none with the stand-in) and the load options."""
    host = None if config["SHOP_DEV_AUTH"] else config.get("CLERK_FRONTEND_API")
    return {
        "dev_auth": config["SHOP_DEV_AUTH"],
        "clerk_publishable_key": config.get("CLERK_PUBLISHABLE_KEY"),
        "clerk_js_url": clerk_js_url(host) if host else None,
        "clerk_ui_url": clerk_ui_url(host) if host else None,
        "clerk_load_options": load_options(sign_in_url="/sign-in"),
    }
