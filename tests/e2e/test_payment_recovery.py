"""A way back from a failed and from an abandoned payment, in Chromium at both widths, on the local Clerk
and Stripe stand-ins: the payment fails → the order page says so and puts the items back in the cart →
check out again → *Back to the shop* from Stripe's page → the pending order offers *Pay now* (in view
on a phone) → a new payment page → paid in another tab, and the waiting order page shows it by itself →
the orders list says "Paid" and "Payment failed" in words."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_mobile import PHONE
from tests.support import live_server

pytestmark = pytest.mark.browser

DESKTOP = {"viewport": {"width": 1280, "height": 800}}


def sign_in(page, url: str) -> None:
    page.goto(f"{url}/sign-in?next=/cart")
    page.get_by_label("E-mail address").fill("ada@example.com")
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Last name").fill("Lovelace")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{url}/cart")


def to_payment_page(page, url: str) -> str:
    """From the cart through checkout to the Stripe stand-in's page; its URL."""
    page.goto(f"{url}/cart")
    page.get_by_role("link", name="Check out").click()
    if page.get_by_label("Full name").is_visible():  # the first time; the address is kept in the book after
        page.get_by_label("Full name").fill("Ada Lovelace")
        page.get_by_label("Street and number").fill("12 Rue de la Paix")
        page.get_by_label("Postal code").fill("75002")
        page.get_by_label("City").fill("Paris")
        page.get_by_label("Country code").fill("FR")
    page.get_by_role("button", name="Continue to payment").click()
    page.wait_for_url(re.compile(rf"{re.escape(url)}/dev-stripe/checkout/\w+$"))
    return page.url


@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_a_failed_payment_then_an_abandoned_one_end_paid(make_app, tmp_path, browser, device):
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
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

            # --- the payment fails: said at once, and the items go back in the cart with one button
            to_payment_page(page, url)
            page.get_by_role("button", name="Pay with a method that fails").click()
            page.wait_for_url(re.compile(rf"{re.escape(url)}/orders/\d+$"))
            failed_order = page.url.rsplit("/", 1)[1]
            expect(
                page.get_by_text(f"The payment did not go through, so order #{failed_order} was cancelled")
            ).to_be_visible()
            expect(page.get_by_text("We are confirming")).to_have_count(0)
            expect(page.get_by_role("button", name="Pay now")).to_have_count(0)
            expect(page.get_by_test_id("payment-status")).to_have_text("Payment failed")
            put_back = page.get_by_role("button", name="Put these items back in my cart")
            expect(put_back).to_be_in_viewport()
            put_back.click()
            page.wait_for_url(f"{url}/cart")
            expect(page.get_by_text(f"The items of order #{failed_order} are in your cart again.")).to_be_visible()
            expect(page.get_by_label("Quantity of Ceramic mug")).to_have_value("2")

            # --- check out again, and leave Stripe's page by its "back" link: the one next step is Pay now
            first_session = to_payment_page(page, url)
            page.get_by_role("link", name="Back to the shop").click()
            page.wait_for_url(re.compile(rf"{re.escape(url)}/orders/\d+$"))
            order_url = page.url
            order_id = order_url.rsplit("/", 1)[1]
            expect(page.get_by_text("This order is waiting for its payment.")).to_be_visible()
            expect(page.get_by_test_id("payment-status")).to_have_text("Awaiting payment")
            pay_now = page.get_by_role("button", name="Pay now")
            expect(pay_now).to_be_in_viewport()  # above the fold, on a phone too
            pay_now.click()
            page.wait_for_url(re.compile(rf"{re.escape(url)}/dev-stripe/checkout/\w+$"))
            second_session = page.url
            assert second_session != first_session  # a new session, the first one expired
            page.goto(first_session)
            expect(page.get_by_role("heading", name="This checkout is expired")).to_be_visible()

            # --- the order page waits; the payment is made in another tab, and the page shows it unasked
            page.goto(order_url)
            expect(page.get_by_test_id("payment-status")).to_have_text("Awaiting payment")
            other_tab = context.new_page()
            other_tab.goto(second_session)
            other_tab.get_by_role("button", name="Pay", exact=True).click()
            expect(
                other_tab.get_by_text(f"Payment received. Thank you! Order #{order_id} is confirmed.")
            ).to_be_visible()
            other_tab.close()
            expect(page.get_by_test_id("payment-status")).to_have_text("Paid", timeout=15_000)
            expect(page.get_by_role("button", name="Pay now")).to_have_count(0)

            # --- the orders list says where each order's money stands, in words
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Orders").click()
            page.wait_for_url(f"{url}/orders")
            rows = page.get_by_test_id("order-row")
            expect(rows).to_have_count(2)
            expect(
                rows.filter(has=page.get_by_role("link", name=f"#{order_id}")).get_by_test_id("payment-state")
            ).to_have_text("Paid")
            expect(
                rows.filter(has=page.get_by_role("link", name=f"#{failed_order}")).get_by_test_id("payment-state")
            ).to_have_text("Payment failed")
    finally:
        context.close()
