"""clerk-js in our pages: which script to load, from where. The pinned major version lives here only."""

from __future__ import annotations

CLERK_JS_MAJOR = 5


def clerk_js_url(frontend_api_host: str) -> str:
    return f"https://{frontend_api_host}/npm/@clerk/clerk-js@{CLERK_JS_MAJOR}/dist/clerk.browser.js"
