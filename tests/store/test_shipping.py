"""Staff ship an order with an optional tracking number (checked: short, only what a carrier's number is made
of), which the "shipped" e-mail and both order pages show; the *Move to* menu offers only the moves the
state machine accepts from the order's status and payment both."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from shop.extensions import db
from shop.mail.models import OutboxMail
from shop.models import Role
from shop.store import cart, checkout
from shop.store.addresses import ShippingAddress
from shop.store.models import Order
from tests.store.conftest import csrf_token_from

ADDRESS = ShippingAddress("Ada Lovelace", "12 Rue de la Paix", None, "75002", "Paris", "FR")
TRACKING = "1Z 999 AA1 0123 4567 84"
RULE = "Tracking number: up to 40 letters, digits, spaces or dashes, as the carrier gives it."


@pytest.fixture
def shopper(client, sign_in):
    """Ada, signed in on `client`; returns her user id."""
    return sign_in("user_ada", email="ada@example.com", first_name="Ada", last_name="Lovelace").id


@pytest.fixture
def staff(app, sign_in):
    staff = app.test_client()
    sign_in("user_staff", as_client=staff, role=Role.ADMIN, email="staff@example.com")
    return staff


@pytest.fixture
def order_in(app, shopper, make_product):
    """An order of Ada's with this status and payment status; returns its id."""
    keys = iter(range(1, 1000))

    def make(status: str = "placed", payment_status: str = "paid") -> int:
        product = make_product(stock=5)
        with app.app_context():
            cart.add(shopper, product_id=product, quantity=1)
            order_id = checkout.place_order(shopper, f"shipping-key-{next(keys):06d}", address=ADDRESS).order.id
            db.session.execute(
                update(Order).where(Order.id == order_id).values(status=status, payment_status=payment_status)
            )
            db.session.commit()
        return order_id

    return make


def text(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def read(app, order_id: int) -> tuple[str, str | None, list[str]]:
    """The order's status, tracking number and the kinds of its e-mails."""
    with app.app_context():
        order = db.session.get_one(Order, order_id)
        kinds = list(db.session.scalars(select(OutboxMail.kind).where(OutboxMail.order_id == order_id)))
        found = (order.status, order.tracking_number, kinds)
        db.session.rollback()
    return found


def test_shipping_with_a_tracking_number_shows_it_on_both_pages_and_in_the_email(app, client, staff, order_in):
    order_id = order_in()
    detail = f"/admin/orders/{order_id}"
    form = text(staff, detail)
    # The limit the browser cuts at is said beside the field, and read with it.
    assert '<input aria-describedby="tracking_number-limit" id="tracking_number" maxlength="40"' in form
    assert '<p class="muted small field-limit" id="tracking_number-limit">Up to 40 characters.</p>' in form
    response = staff.post(
        f"{detail}/status",
        data={"csrf_token": csrf_token_from(staff, detail), "status": "shipped", "tracking_number": f"  {TRACKING}\t"},
    )
    assert response.status_code == 302 and response.headers["Location"] == detail
    page = text(staff, detail)
    assert f"Order #{order_id} is now shipped, tracking number {TRACKING}." in page
    assert f'<dd data-testid="tracking-number">{TRACKING}</dd>' in page
    assert 'name="tracking_number"' not in page  # shipped: nothing left to ship
    assert f'<dd data-testid="tracking-number">{TRACKING}</dd>' in text(client, f"/orders/{order_id}")
    assert read(app, order_id) == ("shipped", TRACKING, ["order_shipped"])
    with app.app_context():
        mail = db.session.scalar(select(OutboxMail.body).where(OutboxMail.kind == "order_shipped"))
    assert f"Tracking number: {TRACKING}" in mail.splitlines()


def test_shipping_without_a_tracking_number_still_ships(app, staff, order_in):
    order_id = order_in()
    detail = f"/admin/orders/{order_id}"
    staff.post(f"{detail}/status", data={"csrf_token": csrf_token_from(staff, detail), "status": "shipped"})
    assert f"Order #{order_id} is now shipped." in text(staff, detail)
    assert read(app, order_id) == ("shipped", None, ["order_shipped"])


@pytest.mark.parametrize(
    ("status", "tracking", "message"),
    [
        ("shipped", "<b>1Z</b>", RULE),
        ("shipped", "1Z999\r\nBcc: everyone@example.com", RULE),  # would forge a line of the e-mail
        ("shipped", "9" * 41, RULE),
        ("shipped", "-", RULE),
        ("cancelled", TRACKING, "A tracking number goes with Shipped only: choose Shipped, or leave it empty."),
    ],
    ids=["markup", "line-break", "too-long", "no-digit-or-letter", "not-shipping"],
)
def test_a_tracking_number_that_cannot_be_one_is_refused_and_nothing_moves(
    app, staff, order_in, status, tracking, message
):
    order_id = order_in()
    detail = f"/admin/orders/{order_id}"
    response = staff.post(
        f"{detail}/status",
        data={"csrf_token": csrf_token_from(staff, detail), "status": status, "tracking_number": tracking},
    )
    assert response.status_code == 302
    assert message in text(staff, detail)
    assert read(app, order_id) == ("placed", None, [])


def test_the_ship_action_needs_its_csrf_token(app, staff, order_in):
    order_id = order_in()
    response = staff.post(f"/admin/orders/{order_id}/status", data={"status": "shipped", "tracking_number": TRACKING})
    assert response.status_code == 400
    assert read(app, order_id) == ("placed", None, [])


def menu(html: str, order_id: int) -> list[str] | None:
    """The values the *Move to* menu of this order offers (None: no menu)."""
    found = re.search(rf'<select id="status-{order_id}" name="status">(.*?)</select>', html, re.S)
    return re.findall(r'<option value="(\w+)">', found.group(1)) if found else None


# (status, payment): what the list's menu offers, and whether the order's page has the ship form.
OFFERED = {
    ("placed", "pending"): (["cancelled"], False),  # not "shipped": the server refuses to ship it unpaid
    ("placed", "paid"): (["shipped", "cancelled"], True),
    ("shipped", "paid"): (["delivered"], False),
    ("delivered", "paid"): (None, False),
    ("cancelled", "paid"): (None, False),  # a late payment: the refund button, not a move
    ("cancelled", "failed"): (None, False),
}


def test_the_move_to_menu_offers_only_the_moves_the_server_allows(staff, order_in):
    ids = {state: order_in(*state) for state in OFFERED}
    listing = text(staff, "/admin/orders")
    for state, (offered, can_ship) in OFFERED.items():
        order_id = ids[state]
        assert menu(listing, order_id) == offered, state
        page = text(staff, f"/admin/orders/{order_id}")
        # On the order's page shipping has its own form (with the tracking number); the menu has the rest.
        assert ('name="tracking_number"' in page) == can_ship, state
        on_page = [value for value in offered or [] if value != "shipped"] or None
        assert menu(page, order_id) == on_page, state
