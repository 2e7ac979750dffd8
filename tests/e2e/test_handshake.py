"""A shopper whose token lapsed comes back to /orders: Clerk's handshake renews it by redirect, no interstitial."""

import time

import pytest

from devtools.clerk_standin import ISSUER, KEY_ID
from devtools.clerk_standin.keys import mint
from tests.support import live_server

pytestmark = pytest.mark.browser


def test_a_lapsed_session_lands_on_orders_signed_in_without_an_interstitial(make_app, tmp_path, page):
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    with live_server(app) as url:
        page.goto(f"{url}/sign-in?next=/orders")
        page.get_by_label("E-mail address").fill("lapsed@example.com")
        page.get_by_label("First name").fill("Ada")
        page.get_by_label("Last name").fill("Lovelace")
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url(f"{url}/orders")
        user_id = page.evaluate("() => fetch('/api/me').then(r => r.json())")["clerk_id"]

        # The tab slept: its 60-second token expired; Clerk's client (our stand-in) still knows the shopper.
        now = int(time.time())
        claims = {
            "sub": user_id,
            "sid": "sess_slept",
            "iss": ISSUER,
            "iat": now - 120,
            "nbf": now - 125,
            "exp": now - 60,
        }
        expired = mint(app.config["STANDIN_PRIVATE_KEY"], KEY_ID, claims)
        page.context.add_cookies([{"name": "__session", "value": expired, "url": url}])

        seen = []
        page.on("response", lambda response: seen.append((response.status, response.url)))
        page.goto(f"{url}/orders")
        page.wait_for_url(f"{url}/orders")

        assert "Ada Lovelace" in page.locator(".site-header").inner_text()
        assert page.locator('[data-clerk="refresh"]').count() == 0
        assert [
            status
            for status, u in seen
            if u.split("?")[0] in (f"{url}/orders", f"{url}/dev-clerk/fapi/v1/client/handshake")
        ] == [307, 307, 200]
        assert 401 not in [status for status, _ in seen]  # no interstitial anywhere on the way
        handshakes = [u for status, u in seen if "/dev-clerk/fapi/v1/client/handshake" in u]
        assert len(handshakes) == 1  # one round trip through Clerk's Frontend API
        cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
        assert cookies["__session"] != expired
        assert "__clerk_handshake_nonce" not in cookies
