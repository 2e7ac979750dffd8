"""A shopper who stays on a page longer than a session token lives is still signed in when they act.

Clerk's session token lives 60 s; here the stand-in mints 4-second tokens so the tests need not
wait minutes. Playwright's clock plays the browser's part of a long pause: with the clock paused no
timer of the page runs (a hidden tab, a sleeping laptop), and `set_system_time` moves the page's
clock two minutes on when the shopper is back. The server's clock is the real one: the tests wait
until the server really refuses the old token.
"""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import text

from shop.extensions import db
from tests.support import live_server, wait_for

pytestmark = pytest.mark.browser

TOKEN_SECONDS = 4


@pytest.fixture
def shop_app(make_app, tmp_path):
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path), CLERK_CLOCK_SKEW_SECONDS="0")
    app.config["STANDIN_TOKEN_SECONDS"] = TOKEN_SECONDS
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    return app


def session_token(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "__session")


def server_refuses(url: str, token: str) -> bool:
    return requests.get(f"{url}/api/me", cookies={"__session": token}, timeout=5).status_code == 401


def mugs_in_cart(app) -> int:
    with app.app_context():
        return db.session.execute(
            text(
                "SELECT coalesce(sum(ci.quantity), 0) FROM cart_items ci JOIN products p ON p.id = ci.product_id"
                " WHERE p.slug = 'ceramic-mug'"
            )
        ).scalar_one()


def sign_in(page, url: str, next_path: str) -> None:
    page.goto(f"{url}/sign-in?next={next_path}")
    page.get_by_label("E-mail address").fill("patient@example.com")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{url}{next_path}")


def detours(page) -> list[str]:
    """Documents that went through sign-in or the refresh page (401) from now on."""
    seen: list[str] = []
    page.on(
        "response",
        lambda r: (
            seen.append(r.url)
            if r.request.is_navigation_request() and ("/sign-in" in r.url or r.status == 401)
            else None
        ),
    )
    return seen


def test_add_to_cart_after_the_tab_slept_past_the_token(shop_app, page):
    """No timer ran while the token lapsed; the click waits for a fresh token, then posts once."""
    with live_server(shop_app) as url:
        page.clock.install()
        sign_in(page, url, "/products/ceramic-mug")
        expect(page.get_by_role("heading", name="Ceramic mug")).to_be_visible()

        # The laptop's lid closes: no timer runs. A moment ahead of the page's clock, which keeps running until
        # paused: pausing at a time it has passed meanwhile (a busy machine) is "Cannot fast-forward to the past".
        page.clock.pause_at(page.evaluate("Date.now() / 1000") + 2)
        # A renewal already on its way may still land: wait until whatever token the page holds is refused.
        wait_for(
            lambda: server_refuses(url, session_token(page)),
            timeout=20,
            what="the server to refuse the page's token",
            interval=0.1,
        )
        lapsed = session_token(page)
        page.clock.set_system_time(page.evaluate("Date.now() / 1000") + 120)  # two minutes later, lid open
        assert session_token(page) == lapsed  # nothing refreshed it: a plain POST would be signed out

        seen = detours(page)
        page.get_by_role("button", name="Add to cart (Ceramic mug)").dblclick()
        expect(page.get_by_text("Added 1 × Ceramic mug to your cart.")).to_be_visible()
        assert page.url == f"{url}/products/ceramic-mug"
        assert seen == []
        assert session_token(page) != lapsed
        assert mugs_in_cart(shop_app) == 1  # once, despite the double click


def test_an_open_page_keeps_the_session_fresh_in_the_background(shop_app, page):
    """Clerk runs on a plain product page: its token is renewed before it lapses, with no click at all."""
    with live_server(shop_app) as url:
        sign_in(page, url, "/products/ceramic-mug")
        first = session_token(page)
        renewed: list[str] = []

        def renewed_twice() -> bool:
            token = session_token(page)
            if token not in renewed and token != first:
                renewed.append(token)
            return len(renewed) >= 2 and server_refuses(url, first)

        wait_for(renewed_twice, timeout=20, what="two renewals, the first token past its expiry", interval=0.1)
        assert not server_refuses(url, session_token(page))

        seen = detours(page)
        page.get_by_role("button", name="Add to cart (Ceramic mug)").click()
        expect(page.get_by_text("Added 1 × Ceramic mug to your cart.")).to_be_visible()
        assert seen == []
        assert mugs_in_cart(shop_app) == 1


def test_signing_out_in_another_tab_signs_this_tab_out(shop_app, page):
    with live_server(shop_app) as url:
        sign_in(page, url, "/cart")
        other = page.context.new_page()
        other.goto(f"{url}/sign-out")
        other.wait_for_url(f"{url}/")
        # The first tab hears it from Clerk and shows itself signed out (here: /cart asks to sign in).
        page.wait_for_url(f"{url}/sign-in?next=/cart")
        expect(page.get_by_role("link", name="Sign in")).to_be_visible()
