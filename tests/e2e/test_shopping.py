"""The shopper's and the operator's journey in Chromium, signed in through the local Clerk stand-in
and paying on the local Stripe stand-in's page.

Browse, search, open a product, add to cart signed out → sign in → the item is in the cart,
change the quantity, check out with a shipping address, pay, see the confirmation and the order
in the history; then, as ADMIN in another browser, read the confirmation e-mail in the
development mailbox, move the order to shipped, read the shipped e-mail, and see the shopper's
page change. With SHOP_SCREENSHOTS=1 every page is saved to docs/screenshots/ for the README's tour.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import save_screenshot
from tests.support import live_server

pytestmark = pytest.mark.browser


def fill_new_address(page) -> None:
    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_label("Street and number").fill("12 Rue de la Paix")
    page.get_by_label("Postal code").fill("75002")
    page.get_by_label("City").fill("Paris")
    page.get_by_label("Country code").fill("FR")


def sign_in_with_standin(page, email: str, first: str, last: str) -> None:
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("First name").fill(first)
    page.get_by_label("Last name").fill(last)
    page.get_by_role("button", name="Continue").click()


def test_shopping_journey_and_staff_shipping_it(make_app, tmp_path, browser, page, screenshot):
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed"]).exit_code == 0

    with live_server(app) as url:
        # --- browse and search, signed out
        page.goto(f"{url}/")
        expect(page.get_by_role("heading", name="Catalogue")).to_be_visible()
        expect(page.get_by_role("list", name="Products").get_by_role("listitem")).to_have_count(12)
        screenshot("catalogue")
        page.get_by_role("link", name="Next →").click()
        expect(page.get_by_text("Page 2 of 2")).to_be_visible()

        page.get_by_label("Search products").fill("mug")
        page.get_by_role("button", name="Search").click()
        page.wait_for_url(f"{url}/?q=mug")
        expect(page.get_by_role("heading", name="Results for “mug”")).to_be_visible()
        expect(page.get_by_role("list", name="Products").get_by_role("listitem")).to_have_count(1)
        screenshot("search")

        page.get_by_role("link", name="Ceramic mug").click()
        page.wait_for_url(f"{url}/products/ceramic-mug")
        expect(page.get_by_role("heading", name="Ceramic mug")).to_be_visible()
        page.get_by_label("Quantity").fill("2")
        screenshot("product")

        # --- add to cart signed out → sign in → back with the item in the cart
        page.get_by_role("button", name="Add to cart (Ceramic mug)").click()
        page.wait_for_url(f"{url}/sign-in?next=/cart")
        expect(page.get_by_text("Sign in to add Ceramic mug to your cart.")).to_be_visible()
        sign_in_with_standin(page, "ada@example.com", "Ada", "Lovelace")
        page.wait_for_url(f"{url}/cart")
        expect(page.get_by_text("Added 2 × Ceramic mug to your cart.")).to_be_visible()
        expect(page.get_by_test_id("cart-line")).to_have_count(1)
        expect(page.get_by_label("Quantity of Ceramic mug")).to_have_value("2")
        expect(page.get_by_test_id("cart-count")).to_have_text("2")

        # --- change the quantity
        page.get_by_label("Quantity of Ceramic mug").fill("3")
        page.get_by_role("button", name="Update").click()
        expect(page.get_by_text("Ceramic mug: quantity 3.")).to_be_visible()
        expect(page.get_by_test_id("cart-total")).to_have_text("€43.50")
        expect(page.get_by_test_id("cart-count")).to_have_text("3")
        screenshot("cart")

        # --- check out
        page.get_by_role("link", name="Check out").click()
        page.wait_for_url(f"{url}/checkout")
        expect(page.get_by_test_id("checkout-total")).to_have_text("€43.50")
        fill_new_address(page)
        screenshot("checkout")
        page.get_by_role("button", name="Continue to payment").click()
        page.wait_for_url(re.compile(rf"{re.escape(url)}/dev-stripe/checkout/cs_test_\w+$"))
        # The items and the demo's Standard shipping (€4.90, chosen by default: the cheapest rate).
        expect(page.get_by_role("heading", name="Pay €48.40")).to_be_visible()
        screenshot("payment")
        page.get_by_role("button", name="Pay", exact=True).click()
        page.wait_for_url(re.compile(rf"{re.escape(url)}/orders/\d+$"))
        order_url = page.url
        order_id = order_url.rsplit("/", 1)[1]
        expect(page.get_by_text(f"Payment received. Thank you! Order #{order_id} is confirmed.")).to_be_visible()
        expect(page.get_by_role("heading", name=f"Order #{order_id}").get_by_test_id("order-status")).to_have_text(
            "Placed"
        )
        expect(page.get_by_test_id("payment-status")).to_have_text("Paid")
        expect(page.get_by_text("12 Rue de la Paix")).to_be_visible()
        expect(page.get_by_test_id("cart-count")).to_have_count(0)  # the cart is empty
        screenshot("order-placed")

        # --- the history
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Orders").click()
        page.wait_for_url(f"{url}/orders")
        expect(page.get_by_test_id("order-row")).to_have_count(1)
        expect(page.get_by_role("link", name=f"#{order_id}")).to_be_visible()
        screenshot("orders")

        # --- staff, in another browser: sign in, be made ADMIN by an operator, ship the order
        staff_context = browser.new_context(viewport={"width": 1200, "height": 800})
        staff = staff_context.new_page()
        staff.set_default_timeout(15_000)

        try:
            staff.goto(f"{url}/sign-in?next=/admin/orders")
            sign_in_with_standin(staff, "grace@example.com", "Grace", "Hopper")
            staff.wait_for_url(f"{url}/admin/orders")
            expect(staff.get_by_role("heading", name="Not allowed")).to_be_visible()  # a CLIENT, for now

            result = runner.invoke(args=["users", "set-role", "grace@example.com", "ADMIN"])
            assert result.exit_code == 0, result.output

            staff.reload()
            # the confirmation e-mail, in the development mailbox (no SMTP configured)
            staff.get_by_role("link", name="E-mail", exact=True).click()
            staff.get_by_role("link", name=re.compile(r"\d+ \w+ \d+:\d+:\d+")).first.click()
            expect(staff.get_by_test_id("mail-subject")).to_have_text(f"Order #{order_id} confirmed: payment received")
            expect(staff.get_by_test_id("mail-body")).to_contain_text("3 × Ceramic mug")
            expect(staff.get_by_test_id("mail-body")).to_contain_text("12 Rue de la Paix")
            save_screenshot(staff, "admin-mail")
            staff.goto(f"{url}/admin/orders")
            row = staff.locator(f'[data-order-id="{order_id}"]')
            expect(row.get_by_test_id("customer")).to_have_text("Ada Lovelace")
            expect(row).to_contain_text("ada@example.com")
            expect(row.get_by_test_id("order-status")).to_have_text("Placed")
            save_screenshot(staff, "admin-orders")
            row.get_by_label(f"New status of order #{order_id}").select_option("shipped")
            row.get_by_role("button", name="Move").click()
            expect(staff.get_by_text(f"Order #{order_id} is now shipped.")).to_be_visible()
            expect(staff.locator(f'[data-order-id="{order_id}"]').get_by_test_id("order-status")).to_have_text(
                "Shipped"
            )
            staff.get_by_role("link", name="Shipped (1)").click()
            expect(staff.get_by_test_id("admin-order-row")).to_have_count(1)
            staff.get_by_role("link", name="E-mail", exact=True).click()
            expect(staff.get_by_text(f"Order #{order_id} shipped")).to_be_visible()  # the shipped e-mail

            staff.get_by_role("link", name="Products", exact=True).click()
            expect(staff.get_by_test_id("admin-product-row")).to_have_count(14)
            save_screenshot(staff, "admin-products")
            staff.get_by_role("link", name="Users", exact=True).click()
            expect(staff.get_by_test_id("admin-user-row")).to_have_count(2)
            save_screenshot(staff, "admin-users")
            staff.get_by_role("link", name="Webhook events", exact=True).click()
            expect(staff.get_by_role("heading", name="Webhook events")).to_be_visible()
            save_screenshot(staff, "admin-webhooks")
        finally:
            staff_context.close()

        # --- the shopper's page has changed
        page.goto(order_url)
        expect(page.get_by_role("heading", name=f"Order #{order_id}").get_by_test_id("order-status")).to_have_text(
            "Shipped"
        )
        expect(page.get_by_role("link", name="Cancel this order")).to_have_count(0)
        screenshot("order-shipped")


def test_the_shop_works_without_javascript_once_signed_in(make_app, tmp_path, browser, page):
    """Only Clerk's components need JavaScript: with it off, cart, checkout and cancel all work."""
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    assert app.test_cli_runner().invoke(args=["seed"]).exit_code == 0
    with live_server(app) as url:
        page.goto(f"{url}/sign-in?next=/account")
        sign_in_with_standin(page, "noscript@example.com", "No", "Script")
        page.wait_for_url(f"{url}/account")

        no_js = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
        try:
            no_js.add_cookies(page.context.cookies())  # the session Clerk's sign-in left
            shop = no_js.new_page()
            shop.set_default_timeout(15_000)
            shop.goto(f"{url}/?q=pencil")
            shop.get_by_role("button", name="Add to cart (Pencil set)").click()
            expect(shop.get_by_text("Added 1 × Pencil set to your cart.")).to_be_visible()
            save_screenshot(shop, "catalogue-mobile")
            shop.get_by_role("link", name="Cart").click()
            shop.get_by_label("Quantity of Pencil set").fill("2")
            shop.get_by_role("button", name="Update").click()
            expect(shop.get_by_test_id("cart-total")).to_have_text("€22.00")
            # an address saved in the book first: checkout preselects it, the new-address fields stay empty
            shop.goto(f"{url}/account/addresses")
            fill_new_address(shop)
            shop.get_by_role("button", name="Add address").click()
            expect(shop.get_by_text("Address added.")).to_be_visible()
            shop.goto(f"{url}/cart")
            shop.get_by_role("link", name="Check out").click()
            expect(shop.get_by_role("radio", name=re.compile("12 Rue de la Paix"))).to_be_checked()
            shop.get_by_role("button", name="Continue to payment").click()
            shop.get_by_role("button", name="Pay", exact=True).click()  # the stand-in's page needs no script either
            expect(
                shop.get_by_role("heading", name=re.compile(r"Order #\d+")).get_by_test_id("order-status")
            ).to_have_text("Placed")
            expect(shop.get_by_test_id("payment-status")).to_have_text("Paid")
            shop.get_by_role("link", name="Cancel this order").click()  # a confirmation page first
            shop.get_by_role("button", name=re.compile(r"Yes, cancel order #\d+")).click()
            expect(
                shop.get_by_text(re.compile(r"Order #\d+ is cancelled; your payment is being refunded\."))
            ).to_be_visible()
        finally:
            no_js.close()
