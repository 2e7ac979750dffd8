"""Every posted form of the store and the admin refuses what a person should not type with one
sentence (a flash or a field error), never a 500, and changes nothing."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from shop.extensions import db
from shop.models import Role, User
from shop.store import cart
from shop.store.models import Order, Product
from tests.store.test_admin import orders_placed, page, staff, token  # noqa: F401  (fixtures)

HOSTILE_NUMBERS = ["lots", "", " ", "-1", "1.5", "1e3", "0x10", "9" * 400, "½"]  # no number, or none that fits


def flashed(html: str) -> list[str]:
    return re.findall(r'class="flash flash-error"[^>]*>\s*([^<]+?)\s*<', html)


@pytest.mark.parametrize("quantity", [*HOSTILE_NUMBERS, "0"])
def test_add_to_cart_refuses_a_quantity_that_is_not_one_or_more(
    app, client, sign_in, make_product, post_form, user_id, quantity
):
    make_product("mug", name="Mug", stock=40)
    sign_in("user_typist")
    response = post_form("/cart/add", {"slug": "mug", "quantity": quantity, "next": "/"})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert flashed(client.get("/").get_data(as_text=True)) == ["Choose a quantity of at least 1."]
    with app.app_context():
        assert cart.count(user_id("user_typist")) == 0


def test_signed_out_add_with_a_bad_quantity_keeps_nothing_for_after_sign_in(client, make_product, post_form):
    make_product("mug", name="Mug")
    response = post_form("/cart/add", {"slug": "mug", "quantity": "-3", "next": "/products/mug"})
    assert response.headers["Location"] == "/products/mug"  # not to sign-in: nothing to add
    with client.session_transaction() as session:
        assert "pending_cart" not in session
    assert "Choose a quantity of at least 1." in client.get("/products/mug").get_data(as_text=True)


def test_add_to_cart_with_an_overlong_slug_is_a_sentence(client, sign_in, make_product, post_form):
    make_product("mug")
    sign_in("user_typist")
    post_form("/cart/add", {"slug": "a" * 10_000, "quantity": "1", "next": "/"})
    assert "This product is no longer available." in client.get("/").get_data(as_text=True)


def test_cart_quantity_form_never_fails_on_what_is_typed(app, client, sign_in, make_product, post_form):
    mug = make_product("mug", stock=40)
    shopper = sign_in("user_fuzz").id

    @given(quantity=st.text(max_size=30).filter(lambda s: "\x00" not in s))
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def typed(quantity: str) -> None:
        with app.app_context():
            if cart.count(shopper) == 0:  # the first example, or an earlier one typed 0 (or 00, or a full-width zero)
                cart.add(shopper, product_id=mug, quantity=1)
        response = post_form(f"/cart/items/{mug}", {"quantity": quantity}, form_page="/cart")
        assert response.status_code == 302
        assert len(flashed(client.get("/cart").get_data(as_text=True))) <= 1  # one sentence, not a pile

    typed()


def test_cart_quantity_not_a_number_is_one_sentence(client, sign_in, make_product, post_form):
    mug = make_product("mug", name="Mug", stock=4)
    sign_in("user_typist")
    post_form("/cart/add", {"slug": "mug", "quantity": "2"})
    for typed in HOSTILE_NUMBERS:
        post_form(f"/cart/items/{mug}", {"quantity": typed})
        html = client.get("/cart").get_data(as_text=True)
        assert flashed(html) == ["Choose a quantity of 0 (to remove) or more."], typed
        assert "Not a valid integer" not in html
    assert re.search(r'value="2"', client.get("/cart").get_data(as_text=True))


def test_checkout_with_a_forged_total_or_key_places_nothing(app, client, sign_in, make_product, post_form):
    make_product("mug", name="Mug", stock=4)
    sign_in("user_typist")
    post_form("/cart/add", {"slug": "mug", "quantity": "1"})
    fields = {
        "address_id": "new",
        **{"new-name": "A", "new-line1": "1 Road", "new-postal_code": "1", "new-city": "C", "new-country": "FR"},
    }
    for extra in ({"idempotency_key": "short"}, {"idempotency_key": "k" * 20, "expected_total": "many"}):
        response = post_form("/checkout", {**fields, **extra}, form_page="/checkout")
        assert response.status_code == 302 and response.headers["Location"] == "/checkout"
        assert "The checkout form is out of date." in client.get("/checkout").get_data(as_text=True)
    response = post_form(
        "/checkout", {**fields, "idempotency_key": "k" * 20, "address_id": "9" * 40}, form_page="/checkout"
    )
    assert response.status_code == 400 and "Choose a shipping address" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Order)) == 0


@pytest.mark.parametrize("stock", [*HOSTILE_NUMBERS, str(2**31), str(2**64)])
def test_stock_box_refuses_with_the_stock_sentence(app, staff, make_product, stock_of, stock):  # noqa: F811
    mug = make_product("mug", stock=5)
    csrf = token(staff, "/admin/products")
    response = staff.post(f"/admin/products/{mug}/stock", data={"csrf_token": csrf, "stock": stock, "seen_stock": "5"})
    assert response.headers["Location"] == "/admin/products"
    assert flashed(page(staff, "/admin/products")) == ["Stock: a whole number from 0 to 1,000,000."]
    assert stock_of(mug) == 5


def test_product_form_is_the_one_place_of_the_rules(staff):  # noqa: F811
    csrf = token(staff, "/admin/products/new")
    form = {"csrf_token": csrf, "name": "x" * 121, "slug": "a--b", "price": "-1", "currency": "EUR", "stock": "1"}
    html = staff.post("/admin/products/new", data={**form, "image": "https://evil.test/x.png"}).get_data(as_text=True)
    for sentence in ("Name: at most 120 characters.", "single dashes", "a price of 0 or more", "Image: a file under"):
        assert sentence in html
    too_long = staff.post("/admin/products/new", data={**form, "name": "Ok", "slug": "a" * 81, "price": "1"})
    assert "Slug: at most 80 characters." in too_long.get_data(as_text=True)


@pytest.mark.parametrize("role", ["", "OWNER", "admin", "ADMIN\n"])
def test_role_form_refuses_what_is_not_a_role(app, staff, make_user, role):  # noqa: F811
    make_user("user_other")
    with app.app_context():
        target = db.session.scalar(select(User.id).where(User.clerk_id == "user_other"))
    csrf = token(staff, "/admin/users")
    staff.post(f"/admin/users/{target}/role", data={"csrf_token": csrf, "role": role})
    assert flashed(page(staff, "/admin/users")) == ["Choose CLIENT or ADMIN."]
    with app.app_context():
        assert db.session.scalar(select(User.role).where(User.clerk_id == "user_other")) == Role.CLIENT


@pytest.mark.parametrize("status", ["", "lost", "PLACED", "shipped "])
def test_status_form_refuses_what_is_not_a_status(app, staff, orders_placed, status):  # noqa: F811
    first = orders_placed[0]
    csrf = token(staff, "/admin/orders")
    response = staff.post(f"/admin/orders/{first}/status", data={"csrf_token": csrf, "status": status})
    assert response.headers["Location"] == f"/admin/orders/{first}"
    assert flashed(page(staff, "/admin/orders")) == ["Choose one of the statuses offered."]
    with app.app_context():
        assert db.session.get(Order, first).status == "placed"


def test_active_form_refuses_what_is_not_show_or_hide(app, staff, make_product):  # noqa: F811
    mug = make_product("mug", name="Mug")
    csrf = token(staff, "/admin/products")
    staff.post(f"/admin/products/{mug}/active", data={"csrf_token": csrf, "active": "maybe"})
    assert flashed(page(staff, "/admin/products")) == ["Choose to show or to hide the product."]
    with app.app_context():
        assert db.session.get(Product, mug).active is True
