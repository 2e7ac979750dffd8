"""What a shopper's browser downloads (issue 21, item 7), with the REAL clerk-js 6 and @clerk/ui 1 and the
browser's HTTP cache on (tests/e2e/network.py): Clerk's components bundle only on the pages that mount a
component, and a return visit asks the shop for none of its static files again. bench/pages.py counts the
bytes; tests/test_static_files.py and tests/test_proxy.py hold the headers behind this.
"""

from __future__ import annotations

import json

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.frontend_api import EMAIL_CODE, FrontendAPI, bundles_installed
from tests.e2e.network import Network, install
from tests.e2e.test_mobile import PHONE
from tests.support import TEST_FRONTEND_API, clerk_user, event, live_server, signed_headers, wait_for

pytestmark = pytest.mark.browser

USER_ID = "user_2pageweight00000000000"
EMAIL = "ada@example.com"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
CLERK_UI = f"https://{TEST_FRONTEND_API}/npm/@clerk/ui@"
PAGES = ("/", "/products/ceramic-mug", "/cart")  # no Clerk component on them


@pytest.fixture(autouse=True)
def _needs_the_bundles():
    if not bundles_installed():
        pytest.skip(
            "SKIPPED LOUDLY: node_modules/@clerk/clerk-js and @clerk/ui are missing, so the tests against the real "
            "clerk-js cannot run. Run `make install-npm` (npm ci) to install them."
        )


def settled(page, network: Network, origin: str) -> None:
    """Until clerk-js has started with Ada's session and none of the shop's requests is in flight, nothing
    having moved on the network for a moment (polled from Python: the CSP forbids the eval
    wait_for_function needs). Clerk's own calls, answered by the fake, are waited for through clerk-js
    having started: one the browser gives up on meanwhile (a busy machine) never reports its end."""
    pause = lambda seconds: page.wait_for_timeout(seconds * 1000)  # noqa: E731  (keeps Playwright's events flowing)
    wait_for(
        lambda: page.evaluate("Boolean(window.Clerk && window.Clerk.loaded && window.Clerk.session)"),
        timeout=15,
        what="clerk-js to start with the session",
        interval=0.05,
        pause=pause,
    )
    wait_for(
        lambda: network.quiet(0.2, prefix=origin),
        timeout=15,
        what=lambda: f"the page's requests to finish ({network.in_flight()})",
        interval=0.05,
        pause=pause,
    )


def visit(page, network: Network, url: str) -> Network:
    network.reset()
    assert page.goto(url).status == 200, url
    settled(page, network, origin="/".join(url.split("/", 3)[:3]))  # http://host:port
    return network


def walk(page, network: Network, origin: str, width: str, *, account: bool) -> None:
    """The pages without a Clerk component, and back to the first: no @clerk/ui anywhere, and no static
    file the browser already has is asked for again (not even a 304's revalidation)."""
    seen: set[str] = set()
    for path in (*PAGES, PAGES[0]):
        visit(page, network, f"{origin}{path}")
        assert not any(r.url.startswith(CLERK_UI) for r in network.requests.values()), (
            f"{path} at {width} asked for Clerk's components, which it does not mount"
        )
        static = [r for r in network.requests.values() if r.url.startswith(f"{origin}/static/")]
        again = [f"{r.url} ({r.status})" for r in static if r.url in seen and not r.cached]
        assert again == [], f"{path} at {width} asked the shop again for {', '.join(again)}"
        seen.update(r.url for r in static)
    assert static and all(r.cached for r in static)  # the return to the first page: nothing of it fetched

    if account:  # a page that mounts a component (the profile) loads the bundle
        visit(page, network, f"{origin}/account")
        assert any(r.url.startswith(CLERK_UI) for r in network.requests.values())
        expect(page.get_by_role("heading", name="Profile details")).to_be_visible()


def test_clerks_components_only_where_mounted_and_a_return_visit_downloads_nothing_again(make_app, browser, tokens):
    app = make_app()  # Clerk configured for the fake's host, as in production; no stand-in
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    problems: list[str] = []
    fapi = FrontendAPI(TEST_FRONTEND_API, tokens, user_id=USER_ID, email=EMAIL, first_name="Ada", last_name="Lovelace")

    with live_server(app) as origin:
        body = json.dumps(event("user.created", clerk_user(USER_ID, email=EMAIL)))
        assert requests.post(f"{origin}/api/webhooks/clerk", data=body, headers=signed_headers(body), timeout=10).ok

        desktop = browser.new_context(**DESKTOP)
        phone = None
        try:
            page = desktop.new_page()
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            network = install(fapi, desktop, page, origin)
            # Signing in works with the components bundle loaded on the sign-in page alone.
            page.goto(f"{origin}/sign-in?next=/cart")
            page.get_by_label("Email address").fill(EMAIL)
            page.get_by_role("button", name="Continue", exact=True).click()
            expect(page.get_by_text("Check your email")).to_be_visible()
            page.get_by_label("Enter verification code").first.click()
            page.keyboard.type(EMAIL_CODE)
            page.wait_for_url(f"{origin}/cart")
            walk(page, network, origin, "1280 px", account=True)

            # The phone: a browser with an empty cache, signed in as Ada already (the same Clerk client).
            phone = browser.new_context(**PHONE, storage_state=desktop.storage_state())
            page = phone.new_page()
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            walk(page, install(fapi, phone, page, origin), origin, "390 px", account=False)
        finally:
            desktop.close()
            if phone:
                phone.close()
    assert problems == []
    assert fapi.unknown == []
