"""Staff's shipping rates (issue 22 item 1): create, edit and deactivate them under CSRF, staff only, bad input
refused with one sentence beside its field; a deactivated rate is no longer offered at checkout."""

import re

from sqlalchemy import select

from shop.extensions import db
from shop.models import Role
from shop.store.models import ShippingRate
from tests.store.test_admin import page, token


def rates(app) -> list[tuple]:
    with app.app_context():
        rows = db.session.execute(
            select(
                ShippingRate.name,
                ShippingRate.price_cents,
                ShippingRate.currency,
                ShippingRate.delivery_estimate,
                ShippingRate.free_above_cents,
                ShippingRate.active,
            ).order_by(ShippingRate.id)
        ).all()
        db.session.rollback()
        return [tuple(row) for row in rows]


def rate_form(csrf: str, **fields: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "name": "Standard",
        "price": "4.90",
        "currency": "EUR",
        "delivery_estimate": "2–4 days",
        "free_above": "50",
        "active": "y",
        **fields,
    }


def test_staff_create_and_edit_rates_and_a_deactivated_one_is_no_longer_offered(
    app, client, sign_in, make_product, post_form
):
    staff = app.test_client()
    sign_in("user_admin", as_client=staff, role=Role.ADMIN, email="admin@example.com")
    assert "Shipping" in page(staff, "/admin/") and "No shipping rates yet" in page(staff, "/admin/shipping")
    created = staff.post("/admin/shipping/new", data=rate_form(token(staff, "/admin/shipping/new")))
    assert created.status_code == 302
    assert rates(app) == [("Standard", 490, "EUR", "2–4 days", 5000, True)]
    listing = page(staff, "/admin/shipping")
    assert "Standard" in listing and "€4.90" in listing and "€50.00" in listing
    rate_id = re.search(r'href="/admin/shipping/(\d+)"', listing).group(1)

    make_product("mug", price_cents=1000)
    sign_in("user_buyer")
    post_form("/cart/add", {"slug": "mug"})
    assert f'name="shipping_rate_id" value="{rate_id}"' in client.get("/checkout").get_data(as_text=True)

    edit = page(staff, f"/admin/shipping/{rate_id}")
    assert 'value="4.90"' in edit and 'value="50.00"' in edit
    csrf = token(staff, f"/admin/shipping/{rate_id}")
    saved = staff.post(  # unticked: no longer offered (a BooleanField sends nothing)
        f"/admin/shipping/{rate_id}",
        data={k: v for k, v in rate_form(csrf, name="Slow", price="3", free_above="").items() if k != "active"},
    )
    assert saved.status_code == 302
    assert rates(app) == [("Slow", 300, "EUR", "2–4 days", None, False)]
    assert "shipping_rate_id" not in client.get("/checkout").get_data(as_text=True)
    assert staff.get("/admin/shipping/999999").status_code == 404


def test_bad_input_gets_one_sentence_and_saves_nothing(app, sign_in):
    staff = app.test_client()
    sign_in("user_admin", as_client=staff, role=Role.ADMIN, email="admin@example.com")
    csrf = token(staff, "/admin/shipping/new")
    for fields, sentence in (
        ({"price": "four"}, "Price: Enter a price such as 12.50."),
        ({"price": "-1"}, "Price: Enter a price of 0 or more, such as 12.50."),
        ({"free_above": "1.999"}, "Free from: A price has at most two decimals."),
        ({"name": ""}, "Give the rate a name, such as Standard."),
        ({"name": "x" * 81}, "Name: at most 80 characters."),
        ({"currency": "euro"}, "Currency: a three-letter code such as EUR."),
        ({"delivery_estimate": "d" * 81}, "Estimate: at most 80 characters."),
    ):
        response = staff.post("/admin/shipping/new", data=rate_form(csrf, **fields))
        assert response.status_code == 400, fields
        assert sentence in response.get_data(as_text=True), fields
    assert rates(app) == []


def test_only_staff_with_a_csrf_token_change_rates(app, client, sign_in):
    sign_in("user_client", role=Role.CLIENT)
    assert client.get("/admin/shipping").status_code == 403
    assert client.post("/admin/shipping/new", data=rate_form("")).status_code in (400, 403)
    staff = app.test_client()
    sign_in("user_admin", as_client=staff, role=Role.ADMIN, email="admin@example.com")
    assert staff.post("/admin/shipping/new", data=rate_form("forged")).status_code == 400  # CSRF
    assert rates(app) == []
