"""Page weight: what a shopper's browser downloads for the home page, a product page and the cart, on a first
visit (empty cache) and on a repeat visit (warm cache), with the real clerk-js 6 and @clerk/ui 1, in Chromium.

    .venv/bin/python bench/pages.py            # or: make bench-pages

What it does:

1. Creates its own database, `bench_pages` on the embedded PostgreSQL (dropped at the end; --keep-database
   keeps it), or uses BENCH_DATABASE_URL, whose `public` schema it EMPTIES first; migrates it and loads the demo
   catalogue.
2. Starts gunicorn with the committed gunicorn.conf.py in production mode, Clerk configured for the test
   Frontend API host (`clerk.shop.test`, from tests/support.py), and, when Debian's nginx is installed (and not
   --no-nginx), nginx in front of it exactly as `make serve-proxy` runs it (deploy/proxy.py).
3. Drives Debian's Chromium (Playwright, never a downloaded browser), 1280x800. Clerk's Frontend API is
   tests/e2e/frontend_api.py's fake, answering clerk-js from the bundles `npm ci` installed (the versions
   package-lock.json pins). It is wired in through the DevTools protocol's Fetch domain for Clerk's hosts only
   (tests/e2e/network.py): Playwright's own routing would switch the browser's HTTP cache off, and the cache is
   what a repeat view measures. Clerk's bundles are served with `Cache-Control: public, max-age=3600` (Clerk's
   CDN decides in production; the same before and after any change of ours), and counted at their gzip size
   (the fake sends them uncompressed; Clerk's CDN compresses).
4. For each page: a new browser context (nothing cached) loads the page and waits until clerk-js has loaded and
   the network has been quiet for half a second: the FIRST view. Then about:blank, and the same page again in
   the same context: the REPEAT view. The home and product pages are measured signed out (a first visitor);
   the cart signed in (two products in it), with the cookies of a sign-in done beforehand through Clerk's
   sign-in component.
5. Counts, from the DevTools protocol's Network events: requests that went to a server (a 304 revalidation is
   one; an answer from the browser's cache is not), and the bytes received for them (headers and body, as sent,
   compressed or not). The shop's own requests and Clerk's bundles are shown apart; Clerk's Frontend API calls
   (the client, the environment, telemetry) are listed on their own and left out of the totals, since no change
   to the page's files moves them. --json PATH writes every request of every view.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, fresh_database, start_gunicorn  # noqa: E402

# tests/e2e/: Clerk's Frontend API fake (frontend_api.py), wired in with the HTTP cache on (network.py)
from tests.e2e.frontend_api import FrontendAPI, bundles_installed  # noqa: E402
from tests.e2e.network import Network, install  # noqa: E402
from tests.support import (  # noqa: E402
    TEST_FRONTEND_API,
    TEST_PUBLISHABLE_KEY,
    WEBHOOK_SECRET,
    TokenMinter,
    clerk_user,
    event,
    signed_headers,
    wait_for,
)

DATABASE = "bench_pages"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
USER_ID = "user_2benchpages000000000000"
EMAIL = "ada@example.com"
EMAIL_CODE = "424242"  # what tests/e2e/frontend_api.py accepts
CART = ("ceramic-mug", "tea-sampler")
QUIET_SECONDS = 0.5
# (name, path, signed in)
PAGES = (("home", "/", False), ("product", "/products/ceramic-mug", False), ("cart", "/cart", True))


# --------------------------------------------------------------------------- the browser


@functools.cache
def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=6))


def kind(origin: str, url: str) -> str:
    if url.startswith(origin + "/"):
        return "shop"
    parts = urlsplit(url)
    if parts.hostname == TEST_FRONTEND_API and parts.path.startswith("/npm/"):
        return "clerk bundles"
    return "clerk api"


@dataclass
class Recorder:
    """One page's Network record (tests/e2e/network.py), and Clerk's bundles at their gzip size."""

    origin: str
    network: Network
    bundles: dict[str, int] = field(default_factory=dict)  # URL -> gzip size

    def figures(self) -> dict[str, Any]:
        by_kind = {k: {"requests": 0, "bytes": 0, "from cache": 0, "304": 0} for k in KINDS}
        for request in self.network.requests.values():
            figures = by_kind[kind(self.origin, request.url)]
            if request.cached:
                figures["from cache"] += 1
                continue
            figures["requests"] += 1
            figures["bytes"] += self.bundles.get(request.url, request.bytes)  # sent uncompressed by the fake
            figures["304"] += request.status == 304
        return {
            "requests": by_kind["shop"]["requests"] + by_kind["clerk bundles"]["requests"],
            "bytes": by_kind["shop"]["bytes"] + by_kind["clerk bundles"]["bytes"],
            **by_kind,
            "detail": [
                {"url": r.url, "status": r.status, "cached": r.cached, "bytes": self.bundles.get(r.url, r.bytes)}
                for r in self.network.requests.values()
            ],
        }


KINDS = ("shop", "clerk bundles", "clerk api")


class Browser:
    """Debian's Chromium; each context gets the Frontend API fake and a Recorder through its own CDP session."""

    def __init__(self, playwright, minter: TokenMinter, origin: str):
        self.minter, self.origin = minter, origin
        self.browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-blink-features=AutomationControlled"],
        )  # fmt: skip

    def fapi(self):
        return FrontendAPI(
            TEST_FRONTEND_API, self.minter, user_id=USER_ID, email=EMAIL, first_name="Ada", last_name="Lovelace"
        )

    @contextmanager
    def page(self, fapi, storage_state: dict | None = None) -> Iterator[tuple[Any, Recorder]]:
        context = self.browser.new_context(viewport=VIEWPORT, storage_state=storage_state)
        try:
            page = context.new_page()
            page.set_default_timeout(20_000)
            bundles: dict[str, int] = {}
            network = install(
                fapi, context, page, self.origin, lambda url, data: bundles.update({url: gzip_size(data)})
            )
            yield page, Recorder(self.origin, network, bundles)
        finally:
            context.close()

    def close(self) -> None:
        self.browser.close()


def settle(page, network: Network) -> None:
    """Until clerk-js has loaded and the network has been quiet for QUIET_SECONDS (polled from Python:
    the CSP forbids the eval wait_for_function needs)."""
    pause = lambda seconds: page.wait_for_timeout(seconds * 1000)  # noqa: E731  (keeps Playwright's events flowing)
    wait_for(
        lambda: page.evaluate("Boolean(window.Clerk && window.Clerk.loaded)"),
        timeout=20,
        what="clerk-js to load",
        interval=0.05,
        pause=pause,
    )
    wait_for(
        lambda: network.quiet(QUIET_SECONDS), timeout=20, what="the network to go quiet", interval=0.05, pause=pause
    )


def view(page, recorder: Recorder, url: str) -> dict[str, Any]:
    recorder.network.reset()
    answer = page.goto(url)
    if answer is None or answer.status != 200 or page.url != url:
        raise SystemExit(f"{url} answered {answer and answer.status} at {page.url}")
    settle(page, recorder.network)
    return recorder.figures()


def sign_in(browser: Browser, fapi) -> dict:
    """Ada signs in through Clerk's sign-in component (e-mail code); the context's cookies and storage."""
    with browser.page(fapi) as (page, _):
        page.goto(f"{browser.origin}/sign-in?next=/")
        page.get_by_label("Email address").fill(EMAIL)
        page.get_by_role("button", name="Continue", exact=True).click()
        page.get_by_text("Check your email").wait_for()
        page.get_by_label("Enter verification code").first.click()
        page.keyboard.type(EMAIL_CODE)
        page.wait_for_url(f"{browser.origin}/")
        page.get_by_text("Ada Lovelace").first.wait_for()
        return page.context.storage_state()


def measure(browser: Browser) -> dict[str, dict[str, Any]]:
    signed_in_fapi = browser.fapi()
    state = sign_in(browser, signed_in_fapi)
    results = {}
    for name, path, signed_in in PAGES:
        fapi = signed_in_fapi if signed_in else browser.fapi()
        with browser.page(fapi, state if signed_in else None) as (page, recorder):
            url = f"{browser.origin}{path}"
            first = view(page, recorder, url)
            page.goto("about:blank")
            repeat = view(page, recorder, url)
        results[name] = {"path": path, "signed in": signed_in, "first": first, "repeat": repeat}
    return results


# --------------------------------------------------------------------------- the shop


def app_settings(database_url: str, minter: TokenMinter, origins: list[str]) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key",
        "CLERK_PUBLISHABLE_KEY": TEST_PUBLISHABLE_KEY,
        "CLERK_JWT_KEY": minter.public_pem,
        "CLERK_AUTHORIZED_PARTIES": ",".join(origins),
        "CLERK_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


def prepare_shop(settings: dict[str, str]):
    import logging

    import flask_migrate

    from shop import create_app
    from shop.extensions import db
    from shop.store.seed import seed

    app = create_app(settings)
    logging.getLogger("shop").setLevel(logging.WARNING)
    with app.app_context():
        flask_migrate.upgrade()
        seed()
        db.engine.dispose()
    return app


def meet_ada(app, origin: str) -> None:
    """Clerk's signed `user.created` webhook, then two products in Ada's cart."""
    import requests

    from shop.extensions import db
    from shop.models import User
    from shop.store import cart

    body = json.dumps(event("user.created", clerk_user(USER_ID, email=EMAIL, first_name="Ada", last_name="Lovelace")))
    answer = requests.post(f"{origin}/api/webhooks/clerk", data=body, headers=signed_headers(body), timeout=10)
    if answer.status_code != 200:
        raise SystemExit(f"the webhook answered {answer.status_code}: {answer.text}")
    with app.app_context():
        user_id = db.session.scalar(db.select(User.id).where(User.clerk_id == USER_ID))
        if not cart.count(user_id):
            for slug in CART:
                cart.add(user_id, slug=slug, quantity=1)
        db.engine.dispose()


# --------------------------------------------------------------------------- report


def kib(n: int) -> str:
    return f"{n / 1024:.1f}"


def report(front: str, results: dict[str, dict[str, Any]]) -> None:
    labels = {
        name: f"{name} {r['path']} ({'signed in' if r['signed in'] else 'signed out'})" for name, r in results.items()
    }
    width = max(len(label) for label in labels.values())
    print(f"\n{front}")
    print(
        f"  {'page':<{width}} {'view':<6} {'requests':>8} {'KiB':>6} |"
        f" {'shop: requests':>14} {'KiB':>5} {'304':>3} {'cached':>6} |"
        f" {'Clerk bundles: requests':>23} {'KiB':>5} {'cached':>6} | {'Clerk API calls':>15}"
    )
    for name, result in results.items():
        label = labels[name]
        for view_name in ("first", "repeat"):
            f = result[view_name]
            shop, bundles, api = f["shop"], f["clerk bundles"], f["clerk api"]
            print(
                f"  {label:<{width}} {view_name:<6} {f['requests']:>8} {kib(f['bytes']):>6} |"
                f" {shop['requests']:>14} {kib(shop['bytes']):>5} {shop['304']:>3} {shop['from cache']:>6} |"
                f" {bundles['requests']:>23} {kib(bundles['bytes']):>5} {bundles['from cache']:>6} |"
                f" {api['requests']:>15}"
            )
            label = ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-nginx", action="store_true", help="gunicorn only, even when nginx is installed")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--json", type=Path, help="write every request of every view here")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from deploy import proxy

    if not Path(CHROMIUM).exists():
        sys.exit(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    if not bundles_installed():
        sys.exit("node_modules/@clerk/clerk-js and @clerk/ui are missing: make install-npm")
    with_nginx = proxy.NGINX.exists() and not args.no_nginx
    if not with_nginx and not args.no_nginx:
        print("nginx is not installed (/usr/sbin/nginx): measuring gunicorn only", flush=True)

    database_url, drop = fresh_database(DATABASE)
    minter = TokenMinter()
    gunicorn_port, nginx_port = free_port(), free_port()
    fronts = {"gunicorn (the app alone)": f"http://localhost:{gunicorn_port}"}
    if with_nginx:
        fronts["nginx in front of gunicorn (deploy/nginx/shop.conf)"] = f"http://localhost:{nginx_port}"
    settings = app_settings(database_url, minter, list(fronts.values()))
    results: dict[str, Any] = {}
    try:
        app = prepare_shop(settings)
        with ExitStack() as stack:
            workspace = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pages-")))
            server = start_gunicorn(settings, gunicorn_port, workspace / "gunicorn.log")
            stack.callback(lambda: (server.terminate(), server.wait(timeout=30)))
            if with_nginx:
                stack.enter_context(
                    proxy.nginx(
                        workspace / "nginx", listen=f"127.0.0.1:{nginx_port}", upstream=f"127.0.0.1:{gunicorn_port}"
                    )
                )
            meet_ada(app, fronts["gunicorn (the app alone)"])
            playwright = stack.enter_context(sync_playwright())
            for front, origin in fronts.items():
                browser = Browser(playwright, minter, origin)
                try:
                    results[front] = measure(browser)
                finally:
                    browser.close()
                report(front, results[front])
    finally:
        if not args.keep_database:
            drop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nevery request: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
