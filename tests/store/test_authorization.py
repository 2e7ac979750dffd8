"""Shopper A can read, change or cancel nothing of shopper B's; clients get 403 on every admin route.
(A form without its CSRF token is refused on every route: tests/test_csrf_walk.py.)"""

import pytest
from sqlalchemy import func, select, text

from shop.extensions import db
from shop.models import Role
from shop.store import cart
from shop.store.models import Order
from tests.store.conftest import checkout_fields, csrf_token_from, latest_order_id


@pytest.fixture
def two_shoppers(app, client, sign_in, make_product, post_form, user_id, stripe_standin):
    """A (the `client`) and B (another client), B with an order and a cart line."""
    mug = make_product("mug", stock=10, name="Mug")
    pen = make_product("pen", stock=10, name="Pen")
    b_client = app.test_client()
    sign_in("user_b", as_client=b_client)
    post_form("/cart/add", {"slug": "mug", "quantity": "2"}, as_client=b_client)
    b_fields = checkout_fields(b_client)
    assert "/dev-stripe/checkout/cs_" in b_client.post("/checkout", data=b_fields).headers["Location"]
    b_order = latest_order_id(app, "user_b")
    post_form("/cart/add", {"slug": "pen", "quantity": "1"}, as_client=b_client)
    sign_in("user_a")
    return {
        "b_client": b_client,
        "b_order": b_order,
        "b_key": b_fields["idempotency_key"],
        "mug": mug,
        "pen": pen,
        "b_id": user_id("user_b"),
        "a_id": user_id("user_a"),
    }


def test_a_cannot_read_bs_orders(client, two_shoppers):
    order = two_shoppers["b_order"]
    assert client.get(f"/orders/{order}").status_code == 404
    assert client.get(f"/api/orders/{order}").status_code == 404
    assert client.get(f"/api/orders/{order}").json == {
        "error": "There is nothing here. The link may be old, or the item was removed."
    }
    assert client.get("/api/orders").json == {"orders": []}
    assert f"/orders/{order}" not in client.get("/orders").get_data(as_text=True)
    # B does see it: the 404 is about who asks
    assert two_shoppers["b_client"].get(f"/orders/{order}").status_code == 200


def test_a_cannot_cancel_bs_order(app, client, two_shoppers, stock_of):
    order = two_shoppers["b_order"]
    token = csrf_token_from(client, "/")
    assert client.get(f"/orders/{order}/cancel").status_code == 404  # not even the confirmation page
    assert client.post(f"/orders/{order}/cancel", data={"csrf_token": token}).status_code == 404
    with app.app_context():
        assert db.session.get(Order, order).status == "placed"
    assert stock_of(two_shoppers["mug"]) == 8


def test_a_cannot_change_or_empty_bs_cart(app, client, two_shoppers):
    token = csrf_token_from(client, "/")
    pen = two_shoppers["pen"]
    client.post(f"/cart/items/{pen}", data={"csrf_token": token, "quantity": "5"})
    client.post(f"/cart/items/{pen}/remove", data={"csrf_token": token})
    with app.app_context():
        [line] = cart.lines(two_shoppers["b_id"])
        assert (line.product.slug, line.quantity) == ("pen", 1)
        assert cart.lines(two_shoppers["a_id"]) == []
    assert "Pen" not in client.get("/cart").get_data(as_text=True)


def test_as_checkout_with_bs_key_does_not_touch_bs_order(app, client, two_shoppers, post_form):
    post_form("/cart/add", {"slug": "mug", "quantity": "1"})
    fields = {**checkout_fields(client), "idempotency_key": two_shoppers["b_key"]}
    fields.pop("expected_total")
    assert "/dev-stripe/checkout/" in client.post("/checkout", data=fields).headers["Location"]
    a_order = latest_order_id(app, "user_a")
    assert a_order != two_shoppers["b_order"]
    with app.app_context():
        owners = dict(db.session.execute(select(Order.id, Order.user_id)).all())
    assert owners == {two_shoppers["b_order"]: two_shoppers["b_id"], a_order: two_shoppers["a_id"]}


def test_b_sees_only_their_own_in_the_json_api(two_shoppers):
    body = two_shoppers["b_client"].get("/api/orders").json
    assert [o["id"] for o in body["orders"]] == [two_shoppers["b_order"]]


def admin_urls(app, ids: dict[str, int]) -> list[tuple[str, str]]:
    """Every (method, URL) the admin blueprint answers, with real ids filled in."""
    urls = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin."):
            continue
        values = {arg: ids[arg] for arg in rule.arguments}
        path = rule.build(values, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            urls.append((method, path))
    return urls


@pytest.fixture
def admin_ids(app, two_shoppers):
    from shop.models import WebhookEvent

    with app.app_context():
        db.session.add(WebhookEvent(svix_id="msg_x", type="user.created", status="failed", payload={}))
        db.session.commit()
        event_id = db.session.scalar(select(WebhookEvent.id))
    return {
        "order_id": two_shoppers["b_order"],
        "product_id": two_shoppers["mug"],
        "user_id": two_shoppers["b_id"],
        "event_id": event_id,
        "mail_id": 1,
        "rate_id": 1,  # need not exist: refused before any look-up
        "refund_id": 1,
    }


def test_every_admin_route_is_403_for_a_client(app, client, admin_ids, stock_of):
    urls = admin_urls(app, admin_ids)
    assert len(urls) >= 14  # orders, products, users, webhooks: pages and actions
    token = csrf_token_from(client, "/")
    for method, path in urls:
        data = {
            "csrf_token": token,
            "status": "shipped",
            "role": "ADMIN",
            "stock": "0",
            "seen_stock": "10",
            "active": "0",
            "name": "x",
            "slug": "x",
            "price": "1",
            "currency": "EUR",
        }
        response = client.open(path, method=method, data=data if method == "POST" else None)
        assert response.status_code == 403, (method, path, response.status_code)
    with app.app_context():
        assert db.session.get(Order, admin_ids["order_id"]).status == "placed"
        from shop.models import User

        assert db.session.get(User, admin_ids["user_id"]).role == Role.CLIENT
    assert stock_of(admin_ids["product_id"]) == 8


def test_every_admin_route_sends_the_signed_out_to_sign_in(app, admin_ids):
    anonymous = app.test_client()
    for method, path in admin_urls(app, admin_ids):
        if method == "GET":
            response = anonymous.get(path)
            assert response.status_code == 302 and response.headers["Location"].startswith("/sign-in?next=/admin")


def test_a_shopper_deleted_elsewhere_is_signed_out_and_cannot_check_out(app, client, sign_in, make_product, post_form):
    """Another process tombstoned the row (the cart survived, as psql would leave it): the next
    request reads the row, finds a tombstone, and is signed out; nothing is placed."""
    make_product("mug", stock=10, name="Mug")
    sign_in("user_a")
    post_form("/cart/add", {"slug": "mug", "quantity": "1"})
    fields = checkout_fields(client)
    with app.app_context():
        db.session.execute(
            text("UPDATE users SET deleted_at = now(), email = NULL, email_key = NULL WHERE clerk_id = 'user_a'")
        )
        db.session.commit()
    response = client.post("/checkout", data=fields)
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 0
