"""The shopper's pages over HTTP, with real CSRF tokens: catalogue, product, cart, checkout, orders."""

import re

import pytest
from sqlalchemy import func, select

from shop.extensions import db
from shop.store import catalogue
from shop.store.models import Order
from tests.store.conftest import checkout_fields, csrf_token_from, latest_order_id, on_standin_page


def text(response) -> str:
    return response.get_data(as_text=True)


def test_catalogue_lists_active_products_by_name(client, make_product):
    make_product("b", name="Bravo mug", price_cents=1450)
    make_product("a", name="Alpha pen", stock=2)
    make_product("h", name="Hidden", active=False)
    page = text(client.get("/"))
    assert page.index("Alpha pen") < page.index("Bravo mug")
    assert "Hidden" not in page
    assert "€14.50" in page
    assert "Only 2 left" in page


def test_search_by_name_is_case_insensitive_and_literal(client, make_product):
    make_product("mug", name="Ceramic Mug")
    make_product("pen", name="Fountain pen")
    make_product("pct", name="100% wool")
    page = text(client.get("/?q=mUG"))
    assert "Ceramic Mug" in page and "Fountain pen" not in page
    assert "Results for “mUG”" in page
    page = text(client.get("/?q=%25"))  # a literal %, not a wildcard
    assert "100% wool" in page and "Ceramic Mug" not in page
    assert "No product matches" in text(client.get("/?q=zzz"))


def test_pagination(client, make_product):
    for n in range(catalogue.PER_PAGE + 3):
        make_product(f"p{n:02d}", name=f"Item {n:02d}")
    first = text(client.get("/"))
    assert "Item 00" in first and f"Item {catalogue.PER_PAGE - 1:02d}" in first
    assert f"Item {catalogue.PER_PAGE:02d}" not in first
    assert 'rel="next" href="/?page=2"' in first
    assert "Page 1 of 2" in first and f"{catalogue.PER_PAGE + 3} products" in first
    second = text(client.get("/?page=2"))
    assert f"Item {catalogue.PER_PAGE:02d}" in second and "Item 00" not in second
    assert 'rel="prev"' in second and 'rel="next"' not in second
    assert "Page 2 of 2" in second
    # Past the last page: a page that does not exist, said so, with the way back to the first.
    past_the_end = client.get("/?page=9")
    assert past_the_end.status_code == 404
    notice = re.search(r'<p class="notice" data-testid="catalogue-notice">(.*?)</p>', text(past_the_end)).group(1)
    assert notice == 'There is no page 9: the catalogue goes up to page 2. <a href="/">Go to the first page</a>.'
    assert "Page 9 of 2" not in text(past_the_end) and 'rel="prev"' not in text(past_the_end)
    searched = text(client.get("/?q=Item&page=5"))
    assert 'There is no page 5: the results go up to page 2. <a href="/?q=Item">Go to the first page</a>.' in searched
    assert re.search(r'data-testid="product-count">1 product<', text(client.get("/?q=Item 01")))
    assert client.get("/?page=-3").status_code == 200
    assert client.get("/?page=abc").status_code == 200


def test_an_empty_catalogue_says_so_on_its_first_page_only(client):
    assert "The catalogue is empty." in text(client.get("/"))
    second = client.get("/?page=2")
    assert second.status_code == 404
    assert 'There is no page 2. <a href="/">Go to the first page</a>.' in text(second)
    assert "The catalogue is empty" not in text(second)


def test_product_page_and_404s(client, make_product):
    make_product("mug", name="Ceramic Mug", description="Holds 350 ml.")
    make_product("old", active=False)
    page = text(client.get("/products/mug"))
    assert "Ceramic Mug" in page and "Holds 350 ml." in page
    assert '<label for="quantity-' in page
    assert client.get("/products/old").status_code == 404
    missing = client.get("/products/none")
    assert missing.status_code == 404 and "Not found" in text(missing)


def test_signed_in_header_shows_the_cart_count(client, sign_in, make_product, post_form):
    make_product("mug")
    assert 'data-testid="cart-count"' not in text(client.get("/"))
    sign_in("user_header")
    post_form("/cart/add", {"slug": "mug", "quantity": "3"})
    assert re.search(r'data-testid="cart-count"[^>]*>3<', text(client.get("/")))


def test_signed_out_add_goes_to_sign_in_and_comes_back_with_the_item(client, sign_in, make_product, post_form):
    make_product("mug", name="Ceramic Mug")
    response = post_form("/cart/add", {"slug": "mug", "quantity": "2", "next": "/products/mug"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/sign-in?next=/cart"
    sign_in("user_later")  # Clerk's sign-in sets the session cookie; the sign-in page then follows next=
    assert client.get("/sign-in?next=/cart").headers["Location"] == "/cart"
    response = client.get("/cart")
    assert response.status_code == 302 and response.headers["Location"] == "/cart"
    page = text(client.get("/cart"))
    assert "Added 2 × Ceramic Mug to your cart." in page
    assert 'value="2"' in page
    # a reload adds nothing more
    assert re.search(r'data-testid="cart-count"[^>]*>2<', text(client.get("/cart")))


def test_add_update_remove_with_messages(client, sign_in, make_product, post_form, user_id):
    mug = make_product("mug", name="Mug", stock=4)
    sign_in("user_forms")
    response = post_form("/cart/add", {"slug": "mug", "quantity": "1", "next": "/?q=m"})
    assert response.headers["Location"] == "/?q=m"
    assert "Added 1 × Mug to your cart." in text(client.get("/"))
    post_form("/cart/add", {"slug": "mug", "quantity": "9"})
    assert "Only 4 of Mug left in stock; you already have 1 in your cart." in text(client.get("/"))
    post_form(f"/cart/items/{mug}", {"quantity": "3"})
    page = text(client.get("/cart"))
    assert "Mug: quantity 3." in page and "€30.00" in page
    post_form(f"/cart/items/{mug}", {"quantity": "lots"})
    assert "Choose a quantity" in text(client.get("/cart"))
    post_form(f"/cart/items/{mug}/remove")
    page = text(client.get("/cart"))
    assert "Removed from your cart." in page and page.count("Your cart is empty") == 1
    assert client.get("/checkout").headers["Location"] == "/cart"
    assert text(client.get("/cart")).count("Your cart is empty") == 1  # said once, not flashed again


def test_a_next_field_cannot_lead_off_site(client, sign_in, make_product, post_form):
    make_product("mug")
    sign_in("user_next")
    response = post_form("/cart/add", {"slug": "mug", "next": "//evil.example/x"})
    assert response.headers["Location"] == "/products/mug"


def test_checkout_through_the_form(client, sign_in, make_product, post_form, app, stock_of, stripe_standin):
    mug = make_product("mug", name="Mug", price_cents=1450, stock=3)
    sign_in("user_checkout", email="checkout@example.com")
    assert client.get("/checkout").headers["Location"] == "/cart"  # empty cart: nothing to check out
    post_form("/cart/add", {"slug": "mug", "quantity": "2"})
    page = text(client.get("/checkout"))
    assert "€29.00" in page and "checkout@example.com" in page
    fields = checkout_fields(client)
    response = client.post("/checkout", data=fields)
    assert response.status_code == 303
    payment_url = response.headers["Location"]
    assert payment_url.startswith(f"{stripe_standin}/dev-stripe/checkout/cs_test_")
    # the same form again (a double click, a reload of the POST): the same order and payment page
    assert client.post("/checkout", data=fields).headers["Location"] == payment_url
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1
    assert stock_of(mug) == 1  # held while the shopper pays
    order_id = latest_order_id(app, "user_checkout")
    paid = on_standin_page(client, payment_url, "pay")
    assert paid.headers["Location"].startswith(f"http://localhost/checkout/return/{order_id}?session_id=cs_test_")
    back = client.get(paid.headers["Location"])
    order_path = f"/orders/{order_id}"
    assert back.headers["Location"] == order_path
    page = text(client.get(order_path))
    assert "Payment received" in page and "Paid" in page and "€29.00" in page and "12 Rue de la Paix" in page
    assert "was already placed; it was not placed twice" in text(
        client.get(client.post("/checkout", data=fields).headers["Location"])
    )
    history = text(client.get("/orders"))
    assert order_path in history and "€29.00" in history


def test_checkout_refusals_are_explained(client, sign_in, make_product, post_form, app):
    mug = make_product("mug", name="Mug", stock=2)
    sign_in("user_refused")
    post_form("/cart/add", {"slug": "mug", "quantity": "2"})
    with app.app_context():
        db.session.execute(db.update(catalogue.Product).where(catalogue.Product.id == mug).values(stock=1))
        db.session.commit()
    page = text(client.get("/cart"))
    assert "Only 1 left in stock." in page
    fields = checkout_fields(client)
    response = client.post("/checkout", data=fields)
    assert response.headers["Location"] == "/cart"
    assert "Not enough stock for: Mug (you want 2, 1 left)" in text(client.get("/cart"))
    response = client.post("/checkout", data={**fields, "idempotency_key": "bad"})
    assert response.headers["Location"] == "/checkout"


def test_the_shopper_cancels_their_placed_order(
    app, client, sign_in, make_product, post_form, stock_of, stripe_standin, payment_status
):
    mug = make_product("mug", stock=3)
    sign_in("user_cancel")
    post_form("/cart/add", {"slug": "mug", "quantity": "2"})
    client.post("/checkout", data=checkout_fields(client))
    order_id = latest_order_id(app, "user_cancel")
    order_path = f"/orders/{order_id}"
    assert f'href="{order_path}/cancel">Cancel this order' in text(client.get(order_path))
    confirm = text(client.get(f"{order_path}/cancel"))  # a page that asks first; nothing is cancelled yet
    assert "Yes, cancel order" in confirm and 'name="csrf_token"' in confirm
    assert stock_of(mug) == 1
    token = csrf_token_from(client, f"{order_path}/cancel")
    assert client.post(f"{order_path}/cancel", data={}).status_code == 400  # the confirm form's CSRF is required
    client.post(f"{order_path}/cancel", data={"csrf_token": token})
    page = text(client.get(order_path))
    assert "is cancelled" in page and "Cancel this order" not in page
    confirm = client.get(f"{order_path}/cancel")
    assert confirm.headers["Location"] == order_path
    assert "can no longer be cancelled" in text(client.get(order_path))
    assert stock_of(mug) == 3
    assert payment_status(order_id) == ("cancelled", "failed")  # its Checkout Session was expired first
    client.post(f"{order_path}/cancel", data={"csrf_token": token})
    assert "cannot be cancelled" in text(client.get(order_path))


@pytest.mark.parametrize("path", ["/cart", "/checkout", "/orders", "/orders/1", "/orders/1/cancel"])
def test_shopper_pages_ask_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/sign-in?next={path}"


def test_api_orders_newest_first(app, client, sign_in, make_product, post_form, stripe_standin):
    make_product("mug", price_cents=500, name="Mug")
    assert client.get("/api/orders").status_code == 401
    sign_in("user_api")
    assert client.get("/api/orders").json == {"orders": []}
    ids = []
    for quantity in (1, 2):
        post_form("/cart/add", {"slug": "mug", "quantity": str(quantity)})
        client.post("/checkout", data=checkout_fields(client))
        ids.append(latest_order_id(app, "user_api"))
    body = client.get("/api/orders").json
    assert [o["id"] for o in body["orders"]] == ids[::-1]
    newest = body["orders"][0]
    assert (
        newest["status"] == "placed"
        and newest["payment_status"] == "pending"
        and newest["total_cents"] == 1000
        and newest["currency"] == "EUR"
    )
    assert newest["items"] == [
        {
            "product_id": newest["items"][0]["product_id"],
            "name": "Mug",
            "unit_price_cents": 500,
            "quantity": 2,
            "line_total_cents": 1000,
        }
    ]
    assert client.get(f"/api/orders/{ids[0]}").json["id"] == ids[0]


@pytest.mark.parametrize(
    ("path", "back"),
    [
        ("/cart/items/1", "/cart"),
        ("/cart/items/1/remove", "/cart"),
        ("/checkout", "/checkout"),
        ("/orders/7/cancel", "/orders/7"),
    ],
)
def test_a_form_posted_signed_out_returns_to_its_page_after_sign_in(client, make_product, path, back):
    """A session that lapsed while the page was open: sign in, then back to the page, not to the POST's URL."""
    make_product("mug")
    response = client.post(path, data={"csrf_token": csrf_token_from(client, "/"), "quantity": "2"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/sign-in?next={back}"
