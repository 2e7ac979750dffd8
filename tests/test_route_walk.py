"""Every route of the app's URL map, walked with hostile path, query and form values, signed out, as
a shopper and as an admin: never a 5xx, never a traceback logged at ERROR.

The values that used to reach PostgreSQL (and came back as a 500) are pinned down first, each with
the answer it gets now; then every (route, method, visitor) meets a fixed set of nasty values; then
Hypothesis generates more.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from shop.extensions import db
from shop.models import Role, User
from shop.store import cart, checkout
from shop.store.models import Order, Product
from tests.support import NEW_ADDRESS, csrf_token

HUGE = [str(2**31), str(2**63 - 1), str(2**63), str(2**64), "9" * 30, "9" * 5000]
NASTY = ["\x00", "x\x00", "-1", "0", "1.5", "%", "' OR '1'='1", "../../etc/passwd", "\\evil.example/", "a" * 3000, ""]
FORM_FIELDS = [
    "quantity", "slug", "next", "status", "role", "stock", "seen_stock", "active", "idempotency_key",
    "expected_total", "name", "price", "currency", "description", "image", "q",
]  # fmt: skip
QUERY_FIELDS = ["q", "page", "status", "next", "deleted"]
ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


class Shop:
    """A shop with a product, a shopper with an order, an admin, and a client for each visitor."""

    def __init__(self, app: Flask, make_user, tokens):
        self.app = app
        make_user("user_walk_shopper", email="shopper@example.com")
        make_user("user_walk_admin", email="admin@example.com", role=Role.ADMIN)
        with app.app_context():
            product = Product(slug="walk-mug", name="Mug", price_cents=1000, currency="EUR", stock=50)
            db.session.add(product)
            db.session.commit()
            self.product_id = product.id
            shopper = db.session.scalar(select(User.id).where(User.clerk_id == "user_walk_shopper"))
            cart.add(shopper, slug="walk-mug", quantity=1)
            self.order_id = checkout.place_order(shopper, "walk-order-key-0001").order.id
            self.user_ids = list(db.session.scalars(select(User.id)))
        expires = int(time.time()) + 3600  # the walk may outlast a session token's usual minute
        self.sessions = {who: tokens.mint(f"user_walk_{who}", exp=expires) for who in ("shopper", "admin")}
        self.visitors = {who: app.test_client() for who in ("signed out", *self.sessions)}
        for who, session in self.sessions.items():
            self.visitors[who].set_cookie("__session", session)
        self.rules = sorted(
            (
                (rule.rule, method)
                for rule in app.url_map.iter_rules()
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
            ),
        )

    def request(self, who: str, rule: str, method: str, path_values: list[str], query, form, *, with_csrf=True):
        client: FlaskClient = self.visitors[who]
        if who in self.sessions:  # again: /sign-out may have cleared it
            client.set_cookie("__session", self.sessions[who])
        values = iter(path_values)
        path = ARGUMENT.sub(lambda _: quote(next(values), safe=""), rule)
        url = path + ("?" + urlencode(query) if query else "")
        if rule.startswith("/dev-clerk/"):  # the local Clerk stand-in speaks JSON, its Backend API with the key
            secret = self.app.config["STANDIN_SECRET_KEY"]
            return client.open(url, method=method, json=dict(form), headers={"Authorization": f"Bearer {secret}"})
        if method == "GET":
            return client.get(url)
        data = MultiDict(form)
        if with_csrf:
            data.setlist("csrf_token", [csrf_token(self.app, client)])
        return client.open(url, method=method, data=data)


@pytest.fixture
def shop(app, make_user, tokens) -> Shop:
    shop = Shop(app, make_user, tokens)
    assert shop.visitors["admin"].get("/admin/").status_code == 200
    assert shop.visitors["shopper"].get("/admin/").status_code == 403
    return shop


@pytest.fixture(autouse=True)
def logs(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def errors_logged(caplog) -> list[str]:
    return [record.getMessage()[:300] for record in caplog.records if record.levelno >= logging.ERROR]


# --- the cases found, each with its answer ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "method", "url", "status"),
    [
        ("signed out", "GET", "/?q=%00", 400),
        ("signed out", "GET", "/?q=ok&q=%00", 400),
        ("signed out", "GET", "/?%00=x", 400),
        ("signed out", "GET", "/products/x%00", 404),
        ("signed out", "GET", "/sign-in?next=/%00x", 400),
        ("signed out", "GET", "/products/" + "a" * 81, 404),
        ("signed out", "GET", "/products/Not-A-Slug", 404),
        ("signed out", "GET", "/?page=5000", 404),
        ("signed out", "GET", "/?page=" + "9" * 5000, 404),
        ("signed out", "GET", "/?page=-3", 200),  # not a page number: the first page
        ("signed out", "GET", "/?page=abc", 200),
        ("signed out", "GET", "/?q=" + "x" * 10_000, 200),
        ("shopper", "GET", f"/orders/{2**64}", 404),
        ("shopper", "GET", f"/orders/{2**63}", 404),
        ("shopper", "GET", f"/orders/{2**63 - 1}", 404),
        ("shopper", "GET", f"/orders/{2**31}", 404),
        ("shopper", "GET", "/orders/0", 404),
        ("shopper", "GET", "/orders/" + "9" * 5000, 404),
        ("shopper", "GET", f"/api/orders/{2**64}", 404),
        ("shopper", "GET", "/orders?page=" + "9" * 30, 404),
        ("shopper", "GET", "/orders?page=1000000", 404),
        ("admin", "GET", f"/admin/orders/{2**64}", 404),
        ("admin", "GET", f"/admin/products/{2**64}", 404),
        ("admin", "GET", f"/admin/webhooks/{2**64}", 404),
        ("admin", "GET", "/admin/users?page=99999999", 404),
        ("admin", "GET", "/admin/users?q=%00", 400),
        ("admin", "GET", "/admin/orders?page=1000000", 404),
    ],
)
def test_values_that_reached_the_database(shop, logs, who, method, url, status):
    response = shop.visitors[who].open(url, method=method)
    assert response.status_code == status
    assert errors_logged(logs) == []


@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("shopper", f"/cart/items/{2**64}"),
        ("shopper", f"/cart/items/{2**64}/remove"),
        ("shopper", f"/orders/{2**63}/cancel"),
        ("admin", f"/admin/users/{2**64}/role"),
        ("admin", f"/admin/orders/{2**64}/status"),
        ("admin", f"/admin/products/{2**64}/stock"),
        ("admin", f"/admin/webhooks/{2**64}/replay"),
    ],
)
def test_posts_to_ids_beyond_64_bits_are_404(shop, logs, who, path):
    client = shop.visitors[who]
    assert client.post(path, data={"csrf_token": csrf_token(shop.app, client), "quantity": "1"}).status_code == 404
    assert errors_logged(logs) == []


def test_a_nul_in_a_form_is_400(shop, logs):
    client = shop.visitors["shopper"]
    response = client.post("/cart/add", data={"csrf_token": csrf_token(shop.app, client), "slug": "walk\x00mug"})
    assert response.status_code == 400
    assert errors_logged(logs) == []


def test_admin_stock_beyond_the_column_is_a_form_error(shop, logs):
    admin = shop.visitors["admin"]
    for stock in (str(2**31), str(2**63), "1000001", "-1"):
        response = admin.post(
            f"/admin/products/{shop.product_id}/stock",
            data={"csrf_token": csrf_token(shop.app, admin), "stock": stock, "seen_stock": "50"},
            follow_redirects=True,
        )
        assert response.status_code == 200
        assert "Stock: a whole number from 0 to 1,000,000." in response.get_data(as_text=True)
    edit = admin.post(
        f"/admin/products/{shop.product_id}",
        data={
            "csrf_token": csrf_token(shop.app, admin),
            **{"name": "Mug", "slug": "walk-mug", "price": "10", "currency": "EUR"},
            **{"stock": str(2**40), "seen_stock": "50", "active": "y"},
        },
    )
    assert edit.status_code == 200 and "Stock: a whole number from 0 to 1,000,000." in edit.get_data(as_text=True)
    with shop.app.app_context():
        assert db.session.get(Product, shop.product_id).stock == 49  # one in the shopper's order
    assert errors_logged(logs) == []


def test_an_order_total_over_the_column_is_refused_with_a_clear_message(shop, logs):
    """Three products at 1,000,000.00, ten of each: 30,000,000.00, over INTEGER's 21,474,836.47."""
    with shop.app.app_context():
        for n in range(3):
            db.session.add(Product(slug=f"gold-{n}", name=f"Gold {n}", price_cents=100_000_000, stock=100))
        db.session.commit()
        shopper = db.session.scalar(select(User.id).where(User.clerk_id == "user_walk_shopper"))
        for n in range(3):
            cart.add(shopper, slug=f"gold-{n}", quantity=10)
        orders_before = db.session.scalar(select(func.count()).select_from(Order))
    client = shop.visitors["shopper"]
    response = client.post(
        "/checkout",
        data={"csrf_token": csrf_token(shop.app, client), "idempotency_key": "walk-order-key-0002", **NEW_ADDRESS},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "One order can total at most €21,474,836.47; split your cart into smaller orders." in response.get_data(
        as_text=True
    )
    with shop.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == orders_before
        stocks = db.session.scalars(select(Product.stock).where(Product.slug.like("gold-%"))).all()
        assert stocks == [100, 100, 100]  # the stock taken for the attempt was given back
    assert errors_logged(logs) == []


# --- every route, every visitor, a fixed set of nasty values ------------------------------------------------


def test_every_route_with_nasty_values(shop, logs):
    walked = 0
    for rule, method in shop.rules:
        arguments = len(ARGUMENT.findall(rule))
        for who in shop.visitors:
            for value in [*HUGE, *NASTY, str(shop.order_id), str(shop.product_id)]:
                query = [(field, value) for field in QUERY_FIELDS]
                form = [(field, value) for field in FORM_FIELDS]
                response = shop.request(who, rule, method, [value] * arguments, query, form)
                assert response.status_code < 500, (who, method, rule, value[:40], response.status_code)
                walked += 1
    assert errors_logged(logs) == []
    assert walked >= len(shop.rules) * 3 * len(HUGE + NASTY)


def test_every_route_of_the_local_clerk_stand_in_with_nasty_values(make_app, make_user, tokens, tmp_path, logs):
    """With SHOP_DEV_AUTH the URL map also has the stand-in's routes (the rest is walked above).
    Signed out: the stand-in verifies sessions with its own key, not the test run's."""
    shop = Shop(make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path)), make_user, tokens)
    rules = [(rule, method) for rule, method in shop.rules if rule.startswith("/dev-clerk/")]
    assert len(rules) >= 8
    for rule, method in rules:
        for value in [*HUGE, *NASTY]:
            form = [(field, value) for field in ("email", "first_name", "last_name", "token")]
            response = shop.request(
                "signed out", rule, method, [value] * 2, [("limit", value), ("offset", value)], form
            )
            assert response.status_code < 500, (method, rule, value[:40], response.status_code)
    assert errors_logged(logs) == []


# --- and what Hypothesis makes up -------------------------------------------------------------------------

VALUES = st.one_of(
    st.sampled_from(HUGE + NASTY),
    st.integers(2**31 - 2, 2**80).map(str),  # past INTEGER's and BIGINT's ends
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=40),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_route_with_generated_values(shop, logs, data):
    logs.clear()
    rule, method = data.draw(st.sampled_from(shop.rules), label="route")
    who = data.draw(st.sampled_from(sorted(shop.visitors)), label="visitor")
    known_ids = st.sampled_from([str(shop.order_id), str(shop.product_id), *map(str, shop.user_ids)])
    path_values = data.draw(st.lists(VALUES | known_ids, min_size=5, max_size=5), label="path")
    query = data.draw(st.lists(st.tuples(st.sampled_from(QUERY_FIELDS) | st.text(max_size=5), VALUES), max_size=4))
    form = data.draw(st.lists(st.tuples(st.sampled_from(FORM_FIELDS) | st.text(max_size=5), VALUES), max_size=6))
    with_csrf = data.draw(st.booleans(), label="with csrf")
    response = shop.request(who, rule, method, path_values, query, form, with_csrf=with_csrf)
    assert response.status_code < 500, (who, method, rule, response.status_code)
    assert errors_logged(logs) == []
