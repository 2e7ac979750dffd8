"""The shop's pages with the REAL clerk-js 6 and @clerk/ui 1 in Chromium, the app under gunicorn in production mode.

Nothing of the stand-in runs here: the pages load Clerk's bundles from the Frontend API host in the
publishable key, which Playwright answers from node_modules (tests/e2e/frontend_api.py) along with the
Frontend API calls clerk-js makes. The app verifies the session tokens with the test run's public key
(CLERK_JWT_KEY), checks `azp` against its own origin, and learns about the user from a signed webhook.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from playwright.sync_api import expect

from shop.clerk.keys import cookie_suffix
from tests.e2e.frontend_api import EMAIL_CODE, FrontendAPI, bundles_installed
from tests.support import TEST_FRONTEND_API, TEST_PUBLISHABLE_KEY, clerk_user, event, signed_headers, wait_for

pytestmark = pytest.mark.browser

USER_ID = "user_2realclerkjs0000000000000"
EMAIL = "ada@example.com"
SUFFIX = cookie_suffix(TEST_PUBLISHABLE_KEY)


@pytest.fixture(autouse=True)
def _needs_the_bundles():
    if not bundles_installed():
        pytest.skip(
            "SKIPPED LOUDLY: node_modules/@clerk/clerk-js and @clerk/ui are missing, so the tests against the real "
            "clerk-js cannot run. Run `make install-npm` (npm ci) to install them."
        )


@pytest.fixture
def shop(make_app, real_clerk_js_server) -> str:
    """The shop at `real_clerk_js_server` (tests/e2e/conftest.py), with the demo catalogue, knowing Ada from
    Clerk's webhook."""
    app = make_app()  # the same database, so this test's rows are cleaned up after it
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    _deliver_user_created(real_clerk_js_server)
    return real_clerk_js_server


def _deliver_user_created(origin: str) -> None:
    """Clerk's `user.created` webhook, signed as Svix signs it: the shop knows Ada before she signs in."""
    body = json.dumps(event("user.created", clerk_user(USER_ID, email=EMAIL, first_name="Ada", last_name="Lovelace")))
    answer = requests.post(f"{origin}/api/webhooks/clerk", data=body, headers=signed_headers(body), timeout=10)
    assert answer.status_code == 200, answer.text


@pytest.fixture
def fapi(tokens) -> FrontendAPI:
    return FrontendAPI(TEST_FRONTEND_API, tokens, user_id=USER_ID, email=EMAIL, first_name="Ada", last_name="Lovelace")


@pytest.fixture
def watched(page, fapi, shop):
    """The page, with the fake Frontend API installed and every CSP violation and page error collected."""
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text or "Refused to" in m.text else None,
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    fapi.install(page.context, shop)
    page.problems = problems
    return page


def cookies(page) -> dict[str, str]:
    return {c["name"]: c["value"] for c in page.context.cookies()}


def wait_for_clerk(page) -> None:
    """Until clerk-js has loaded (polled from Python: the CSP forbids the eval wait_for_function needs)."""
    wait_for(
        lambda: page.evaluate("Boolean(window.Clerk && window.Clerk.loaded)"),
        timeout=15,
        what="clerk-js to load",
        interval=0.05,
        pause=lambda seconds: page.wait_for_timeout(seconds * 1000),
    )


def sign_in_with_email_code(page, origin: str, next_path: str) -> None:
    page.goto(f"{origin}/sign-in?next={next_path}")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_role("button", name="Continue", exact=True).click()
    expect(page.get_by_text("Check your email")).to_be_visible()
    page.get_by_label(re.compile("Enter verification code", re.I)).first.click()
    page.keyboard.type(EMAIL_CODE)
    page.wait_for_url(f"{origin}{next_path}")


def test_sign_in_profile_and_sign_out_with_the_real_clerk_js(watched, fapi, shop):
    page = watched
    page.goto(f"{shop}/sign-in?next=/account")
    assert page.evaluate("navigator.webdriver") is False  # so clerk-js sends telemetry, as for shoppers
    expect(page.get_by_role("button", name="Continue with Google")).to_be_visible()
    assert page.evaluate("window.Clerk.version") == "6.40.0"
    assert page.evaluate("window.__internal_ClerkUICtor.version") == "1.34.0"

    sign_in_with_email_code(page, shop, "/account")
    expect(page.get_by_test_id("account-name")).to_have_text("Ada Lovelace")
    # The profile component mounts on /account.
    expect(page.get_by_role("heading", name="Profile details")).to_be_visible()

    # The cookies clerk-js set are the ones the server reads: suffixed and plain.
    jar = cookies(page)
    assert jar[f"__session_{SUFFIX}"] and jar[f"__client_uat_{SUFFIX}"] != "0"
    assert int(jar["__client_uat"]) > 0
    assert (
        requests.get(f"{shop}/api/me", cookies={"__session": jar["__session"]}, timeout=5).json()["clerk_id"] == USER_ID
    )

    for path in ("/", "/?q=mug", "/products/ceramic-mug", "/cart", "/checkout", "/orders"):  # Clerk on every page
        assert page.goto(f"{shop}{path}").status < 400, path
        wait_for_clerk(page)
        assert page.evaluate("Boolean(window.Clerk.session)"), path

    page.get_by_role("link", name="Sign out").click()
    page.wait_for_url(f"{shop}/")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    assert cookies(page).get("__client_uat", "0") == "0"
    assert ("DELETE", "/v1/client/sessions") in fapi.calls
    page.goto(f"{shop}/account")
    page.wait_for_url(f"{shop}/sign-in?next=/account")

    assert fapi.telemetry > 0  # development instance: telemetry sent, and the CSP let it through
    assert page.problems == []
    assert fapi.unknown == []


def test_clerk_runs_on_a_plain_page_and_renews_the_token(watched, fapi, shop):
    page = watched
    fapi.token_seconds = 12  # Clerk's are 60 s: renewal comes sooner, the test waits less
    sign_in_with_email_code(page, shop, "/products/ceramic-mug")
    minted = fapi.tokens_minted
    first = cookies(page)["__session"]

    # Renewed in the background, before the token lapses: the Frontend API minted a new token (asked
    # for at .../tokens, or carried by a client resource clerk-js polled) and the cookie changed. Both,
    # because a token minted just before the baseline can still reach the cookie just after it.
    wait_for(
        lambda: cookies(page)["__session"] != first and fapi.tokens_minted > minted,
        timeout=30,
        what=lambda: f"a token renewed in the background ({fapi})",
        interval=0.2,
        pause=lambda seconds: page.wait_for_timeout(seconds * 1000),
    )

    page.get_by_role("button", name="Add to cart (Ceramic mug)").click()
    expect(page.get_by_text("Added 1 × Ceramic mug to your cart.")).to_be_visible()
    assert page.url == f"{shop}/products/ceramic-mug"
    assert page.problems == []


def test_add_to_cart_after_the_token_lapsed_unrenewed(watched, fapi, shop):
    """clerk-js renews the token from a worker's timers, which Playwright's clock cannot pause; so the
    sleeping laptop is played by a Frontend API that cannot be reached while the token lapses. When it is
    back, "Add to cart" waits for clerk-js's fresh token: the item is added once, with no sign-in detour."""
    page = watched
    fapi.token_seconds = 4
    sign_in_with_email_code(page, shop, "/products/ceramic-mug")
    wait_for_clerk(page)

    fapi.reachable = False

    # The server's real clock passes the expiry of whatever token the page holds (a renewal that was on its
    # way when the Frontend API went away may still land).
    def refused() -> bool:
        token = cookies(page)["__session"]
        return requests.get(f"{shop}/api/me", cookies={"__session": token}, timeout=5).status_code == 401

    wait_for(refused, timeout=20, what="the server to refuse the page's token", interval=0.1)
    lapsed = cookies(page)["__session"]  # refused by the server: a plain POST would be signed out
    fapi.reachable = True
    minted = fapi.tokens_minted

    detours: list[str] = []
    page.on(
        "response",
        lambda r: (
            detours.append(r.url)
            if r.request.is_navigation_request() and (r.status == 401 or "/sign-in" in r.url)
            else None
        ),
    )
    page.get_by_role("button", name="Add to cart (Ceramic mug)").dblclick()
    expect(page.get_by_text("Added 1 × Ceramic mug to your cart.")).to_be_visible()
    assert page.url == f"{shop}/products/ceramic-mug"
    assert detours == []
    assert fapi.tokens_minted > minted and cookies(page)["__session"] != lapsed


def test_a_sign_out_in_another_tab_signs_this_tab_out(watched, fapi, shop):
    page = watched
    sign_in_with_email_code(page, shop, "/cart")
    wait_for_clerk(page)
    other = page.context.new_page()
    other.goto(f"{shop}/sign-out")
    other.wait_for_url(f"{shop}/")
    page.wait_for_url(f"{shop}/sign-in?next=/cart")  # clerk-js told this tab; shop.js showed it signed out
    expect(page.get_by_role("button", name="Continue with Google")).to_be_visible()
    assert page.problems == []


def test_a_missing_ui_bundle_is_named_on_the_sign_in_page(watched, shop):
    page = watched
    page.context.route(f"https://{TEST_FRONTEND_API}/npm/@clerk/ui@1/**", lambda route: route.fulfill(status=404))
    page.goto(f"{shop}/sign-in")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(f"Clerk's components (@clerk/ui) could not be downloaded from {TEST_FRONTEND_API}.")
    expect(alert).not_to_contain_text("connection")
