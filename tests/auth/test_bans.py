"""A user banned in Clerk is refused on the very next request, in every worker: pages are served
signed out with one sentence saying the account is suspended, the API answers 403; the cart and
the orders stay, and lifting the ban lets the shopper straight back."""

from __future__ import annotations

import html

from sqlalchemy import text

from shop.auth.session import SUSPENDED
from shop.extensions import db
from shop.store.models import Product
from tests.store.conftest import checkout_fields, latest_order_id
from tests.support import clerk_user, csrf_token, event

PAGE = {"Accept": "text/html", "Sec-Fetch-Dest": "document"}
SENTENCE = html.escape(SUSPENDED)


def add_product(app, slug: str) -> int:
    with app.app_context():
        product = Product(
            slug=slug, name=slug.title(), description="A test product.", price_cents=1000, currency="EUR", stock=10
        )
        db.session.add(product)
        db.session.commit()
        return product.id


def ban(deliver, clerk_id: str, banned: bool, updated_at: int):
    """Clerk's `user.updated` after a ban (or its lifting), signed, through the real endpoint."""
    user = clerk_user(clerk_id, email=f"{clerk_id}@example.com", updated_at=updated_at, banned=banned)
    response = deliver(event("user.updated", user))
    assert response.json == {"status": "processed"}


CART_AND_ORDERS = """
    SELECT (SELECT coalesce(sum(i.quantity), 0) FROM cart_items i JOIN carts c ON c.id = i.cart_id
            WHERE c.user_id = u.id),
           (SELECT count(*) FROM orders o WHERE o.user_id = u.id)
    FROM users u WHERE u.clerk_id = :clerk_id
"""


def cart_and_orders(app, clerk_id: str) -> tuple[int, int]:
    """Units in the shopper's cart, and their orders."""
    with app.app_context():
        row = db.session.execute(text(CART_AND_ORDERS), {"clerk_id": clerk_id}).one()
        db.session.rollback()
        return tuple(row)


def test_a_ban_signs_out_the_next_request_and_lifting_it_lets_the_shopper_back(
    app, client, make_app, sign_in, deliver, tokens, stripe_standin
):
    product_id = add_product(app, "mug")
    sign_in("user_banned", first_name="Grace", last_name="Hopper")
    client.post("/cart/add", data={"csrf_token": csrf_token(app, client), "slug": "mug", "quantity": "2"})
    placed = client.post("/checkout", data=checkout_fields(client))
    assert placed.status_code in (302, 303), placed.get_data(as_text=True)
    order_id = latest_order_id(app, "user_banned")
    client.post("/cart/add", data={"csrf_token": csrf_token(app, client), "slug": "mug", "quantity": "1"})
    assert order_id is not None and cart_and_orders(app, "user_banned") == (1, 1)

    other_worker = make_app().test_client()  # another process: it never hears of the webhook
    other_worker.set_cookie("__session", tokens.mint("user_banned"))
    assert other_worker.get("/api/me").status_code == 200  # its verified token is now cached there

    ban(deliver, "user_banned", True, updated_at=2)

    for worker in (client, other_worker):
        me = worker.get("/api/me")
        assert (me.status_code, me.json) == (403, {"error": SUSPENDED})
        assert worker.get("/api/orders").status_code == 403
        # a page: served signed out, saying why, once
        page = worker.get("/", headers=PAGE)
        body = page.get_data(as_text=True)
        assert page.status_code == 200
        assert body.count(SENTENCE) == 1
        assert "Sign out" not in body and "Grace" not in body
        # a page that needs a shopper sends to sign-in, where the sentence shows (once)
        cart = worker.get("/cart", headers=PAGE)
        assert cart.status_code == 302 and cart.headers["Location"].startswith("/sign-in")
        sign_in_page = worker.get(cart.headers["Location"], headers=PAGE).get_data(as_text=True)
        assert sign_in_page.count(SENTENCE) == 1
        # a form: refused like any signed-out one (through sign-in), nothing changed
        emptied = worker.post(
            f"/cart/items/{product_id}/remove", data={"csrf_token": csrf_token(app, worker)}, follow_redirects=True
        )
        assert emptied.request.path == "/sign-in" and emptied.get_data(as_text=True).count(SENTENCE) == 1
    assert cart_and_orders(app, "user_banned") == (1, 1)  # untouched

    ban(deliver, "user_banned", False, updated_at=3)

    for worker in (client, other_worker):
        assert worker.get("/api/me").json["clerk_id"] == "user_banned"
        assert [o["id"] for o in worker.get("/api/orders").json["orders"]] == [order_id]
        page = worker.get("/", headers=PAGE).get_data(as_text=True)
        assert SENTENCE not in page and "Sign out" in page
    assert client.get("/cart", headers=PAGE).status_code == 200
    assert cart_and_orders(app, "user_banned") == (1, 1)


def test_a_ban_set_by_another_process_counts_with_the_next_request(app, client, sign_in):
    sign_in("user_a")
    sign_in("user_b", as_client=(other := app.test_client()))
    assert client.get("/api/me").status_code == 200
    with app.app_context():
        db.session.execute(text("UPDATE users SET banned = true WHERE clerk_id = 'user_a'"))
        db.session.commit()
    assert client.get("/api/me").status_code == 403
    assert other.get("/api/me").status_code == 200  # only the banned user
    assert client.get("/api/test-db").status_code == 403  # the whole API, in JSON
    assert client.get("/api/test-db").json == {"error": SUSPENDED}


def test_a_locked_user_is_not_refused(app, client, sign_in):
    """`locked` (too many failed sign-ins) is Clerk's to enforce at sign-in: a live session keeps working."""
    sign_in("user_locked")
    with app.app_context():
        db.session.execute(text("UPDATE users SET locked = true WHERE clerk_id = 'user_locked'"))
        db.session.commit()
    assert client.get("/api/me").status_code == 200
