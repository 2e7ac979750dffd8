"""What the shop says, in Chromium at both widths: a catalogue page that does not exist says so and leads to
the first; a field's length limit (where the browser cuts what is typed or pasted) is shown and read with
it; staff ship with a tracking number that the shopper's order page shows; the *Move to* menu offers only
what the server allows."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import select, update

from shop.extensions import db
from shop.models import Role, User
from shop.store import cart, checkout, shipping
from shop.store.addresses import ShippingAddress
from shop.store.models import Order, Product
from tests.e2e.test_mobile import PHONE
from tests.support import live_server, wait_for

pytestmark = pytest.mark.browser

DESKTOP = {"viewport": {"width": 1280, "height": 800}}
TRACKING = "1Z 999 AA1 0123 4567 84"
ADDRESS = ShippingAddress("Grace Hopper", "12 Rue de la Paix", None, "75002", "Paris", "FR")


def orders_of(app, email: str) -> tuple[int, int]:
    """Two orders of the signed-in shopper, placed as checkout does: (paid, still pending)."""
    with app.app_context():
        user_id = wait_for(
            lambda: db.session.scalar(select(User.id).where(User.email == email)) or db.session.rollback(),
            what="the shopper mirrored",
        )
        products = list(db.session.scalars(select(Product.id).order_by(Product.id).limit(2)))
        placed = []
        for n, product in enumerate(products):
            cart.add(user_id, product_id=product, quantity=1)
            placed.append(
                checkout.place_order(
                    user_id,
                    f"words-key-{n:06d}",
                    address=ADDRESS,
                    shipping_rate_id=shipping.offered("EUR", 0)[0].rate_id,
                ).order.id
            )
        db.session.execute(update(Order).where(Order.id == placed[0]).values(payment_status="paid"))
        db.session.commit()
    return placed[0], placed[1]


@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_missing_page_length_limits_tracking_number_and_move_menu(make_app, tmp_path, browser, device):
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed"]).exit_code == 0  # 14 products: two pages of 12
    with live_server(app) as url:
        context = browser.new_context(**device)
        try:
            page = context.new_page()
            page.set_default_timeout(15_000)

            # --- a page past the last one: said so, with the way to the first, never "the catalogue is empty"
            assert page.goto(f"{url}/?page=99").status == 404
            notice = page.get_by_test_id("catalogue-notice")
            expect(notice).to_have_text("There is no page 99: the catalogue goes up to page 2. Go to the first page.")
            notice.get_by_role("link", name="Go to the first page").click()
            page.wait_for_url(f"{url}/")
            expect(page.get_by_text("Page 1 of 2")).to_be_visible()

            # --- signed in (through the stand-in's API, as its page would), and made staff
            shopper = requests.Session()
            signed = shopper.post(f"{url}/dev-clerk/sign-in", json={"email": "ada@example.com"}, timeout=10)
            assert signed.status_code == 200, signed.text
            context.add_cookies(  # the stand-in's own client cookie too (path /dev-clerk): its script keeps it
                [
                    {"name": c.name, "value": c.value or "", "domain": "127.0.0.1", "path": c.path}
                    for c in shopper.cookies
                ]
            )
            paid, pending = orders_of(app, "ada@example.com")
            assert runner.invoke(args=["users", "set-role", "ada@example.com", Role.ADMIN.value]).exit_code == 0

            # --- a field's limit is shown and read with it: the browser cuts the pasted street at 200
            page.goto(f"{url}/account/addresses")
            street = page.get_by_label("Street and number")
            street.fill("Kurfürstendamm 123, Hinterhaus, Aufgang C, " * 6)  # 258 characters
            assert len(street.input_value()) == 200
            expect(street).to_have_accessible_description("Up to 200 characters.")
            expect(page.get_by_text("Up to 200 characters.").first).to_be_visible()

            # --- the menu offers only what the server allows: an unpaid order cannot be shipped
            page.goto(f"{url}/admin/orders")
            options = page.get_by_label(f"New status of order #{pending}").locator("option")
            expect(options).to_have_text(["Cancelled"])
            expect(page.get_by_label(f"New status of order #{paid}").locator("option")).to_have_text(
                ["Shipped", "Cancelled"]
            )

            # --- shipping with a tracking number, on the order's page
            page.goto(f"{url}/admin/orders/{paid}")
            expect(page.get_by_label(f"New status of order #{paid}").locator("option")).to_have_text(["Cancelled"])
            tracking = page.get_by_label("Tracking number (optional)")
            expect(tracking).to_have_accessible_description("Up to 40 characters.")
            tracking.fill(TRACKING)
            page.get_by_role("button", name="Mark as shipped").click()
            expect(page.get_by_text(f"Order #{paid} is now shipped, tracking number {TRACKING}.")).to_be_visible()
            expect(page.get_by_test_id("tracking-number")).to_have_text(TRACKING)
            expect(page.get_by_role("button", name="Mark as shipped")).to_have_count(0)

            # --- the shopper's page shows it
            page.goto(f"{url}/orders/{paid}")
            expect(page.get_by_test_id("tracking-number")).to_have_text(TRACKING)
            expect(page.get_by_test_id("tracking-number")).to_be_in_viewport()
        finally:
            context.close()
