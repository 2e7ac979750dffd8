"""Selling for real (issue 22), in Chromium at both widths, on the local Clerk and Stripe stand-ins with Stripe
Tax and promotion codes on: choose Express shipping at checkout → Stripe's page shows the shipping and the tax
→ enter the demo code DEMO10 → pay → the order's page shows what was charged, part by part."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_mobile import PHONE
from tests.e2e.test_payment_recovery import DESKTOP, sign_in
from tests.support import live_server

pytestmark = pytest.mark.browser


def charged(page, label: str, amount: str):
    """The row of the order's "What was charged" table whose header starts with this label ("Shipping (Express)"),
    with this amount (a discount may be signed)."""
    row = (
        page.get_by_test_id("charged")
        .get_by_role("row")
        .filter(has=page.get_by_role("rowheader", name=re.compile(rf"^{label}")))
    )
    expect(row).to_contain_text(re.compile(rf"[-−]?{re.escape(amount)}"))


@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_shipping_choice_and_discount_code_to_a_paid_order_showing_the_breakdown(make_app, tmp_path, browser, device):
    app = make_app(
        SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path), STRIPE_AUTOMATIC_TAX="1", STRIPE_PROMOTION_CODES="1"
    )
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0  # the demo's Standard and Express rates
    context = browser.new_context(**device)
    try:
        with live_server(app) as url:
            page = context.new_page()
            page.set_default_timeout(15_000)
            sign_in(page, url)
            page.goto(f"{url}/products/ceramic-mug")
            page.get_by_label("Quantity").fill("2")
            page.get_by_role("button", name=re.compile("Add.*to cart")).click()
            expect(page.get_by_text("Added 2 × Ceramic mug to your cart.")).to_be_visible()

            # --- checkout: the two demo rates, the cheaper one chosen; the shopper takes Express
            page.goto(f"{url}/cart")
            page.get_by_role("link", name="Check out").click()
            standard = page.get_by_role("radio", name=re.compile(r"Standard: €4\.90"))
            express = page.get_by_role("radio", name=re.compile(r"Express: €9\.90"))
            expect(standard).to_be_checked()
            express.check()
            page.get_by_label("Full name").fill("Ada Lovelace")
            page.get_by_label("Street and number").fill("12 Rue de la Paix")
            page.get_by_label("Postal code").fill("75002")
            page.get_by_label("City").fill("Paris")
            page.get_by_label("Country code").fill("FR")
            page.get_by_role("button", name="Continue to payment").click()
            page.wait_for_url(re.compile(rf"{re.escape(url)}/dev-stripe/checkout/\w+$"))

            # --- Stripe's page (the stand-in): shipping and tax (France, 20 %), then the demo code
            expect(page.get_by_role("heading", name="Pay €46.68")).to_be_visible()  # 29.00 + 9.90 + 5.80 + 1.98
            page.get_by_label("Promotion code").fill("DEMO10")
            page.get_by_role("button", name="Apply").click()
            expect(page.get_by_test_id("standin-discount")).to_have_text("-€2.90")
            expect(page.get_by_role("heading", name="Pay €43.20")).to_be_visible()  # 26.10 + 9.90 + 5.22 + 1.98
            page.get_by_role("button", name="Pay", exact=True).click()

            # --- the paid order's page: what was charged, part by part
            page.wait_for_url(re.compile(rf"{re.escape(url)}/orders/\d+"))
            expect(page.get_by_test_id("payment-status")).to_contain_text("Paid")
            for label, amount in (
                ("Subtotal", "€29.00"),
                ("Discount", "€2.90"),
                ("Shipping", "€9.90"),
                ("Tax", "€7.20"),
                ("Total", "€43.20"),
            ):
                charged(page, label, amount)
    finally:
        context.close()
