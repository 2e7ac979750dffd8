"""Every page, in Chromium, under the shop's Content-Security-Policy: no violation in the console."""

import pytest
from playwright.sync_api import expect

from shop.models import Role
from tests.support import live_server

pytestmark = pytest.mark.browser

SHOPPER_PAGES = ["/", "/?q=mug", "/products/ceramic-mug", "/cart", "/checkout", "/orders", "/account", "/sign-in"]
ADMIN_PAGES = ["/admin/", "/admin/orders", "/admin/products", "/admin/users", "/admin/webhooks"]


def test_no_csp_violation_on_any_page(make_app, tmp_path, page):
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed"]).exit_code == 0
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.on("pageerror", lambda error: violations.append(str(error)))

    with live_server(app) as url:
        page.goto(f"{url}/sign-in")
        page.get_by_label("E-mail address").fill("csp@example.com")
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url(f"{url}/")
        page.goto(f"{url}/products/ceramic-mug")
        page.get_by_role("button", name="Add to cart (Ceramic mug)").click()
        expect(page.get_by_text("Added 1 × Ceramic mug to your cart.")).to_be_visible()
        assert runner.invoke(args=["users", "set-role", "csp@example.com", Role.ADMIN.value]).exit_code == 0

        for path in SHOPPER_PAGES[:-1] + ADMIN_PAGES:
            response = page.goto(f"{url}{path}")
            assert response.status < 400, path
            assert response.headers["content-security-policy"].startswith("default-src 'self'")
            page.wait_for_load_state("networkidle")
    assert violations == []


def test_the_policy_blocks_what_it_does_not_allow(make_app, tmp_path, page):
    """The check above can fail: a script from a host the policy does not name is refused."""
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    with live_server(app) as url:
        page.goto(f"{url}/sign-in")
        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.src = 'https://cdn.example.com/x.js'; document.body.appendChild(s); }"
        )
        page.evaluate(
            "() => { try { eval('1') } catch (e) { console.error('Content Security Policy: ' + e.message) } }"
        )
        page.wait_for_timeout(300)
    assert any("cdn.example.com" in v or "script-src" in v for v in violations)
