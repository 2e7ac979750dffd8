"""Every route of the app's URL map, walked with hostile path, query and form values, signed out, as
a shopper and as an admin: never a 5xx, never a traceback logged at ERROR.

The values that used to reach PostgreSQL (and came back as a 500) are pinned down first, each with
the answer it gets now; then every (route, method, visitor) meets a fixed set of nasty values; then
Hypothesis generates more.

The webhooks get their hostile values inside an event signed as their sender signs it (Stripe's
scheme, Svix's): unsigned, a body is refused at the signature and the parser behind it never meets it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import stripe
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from svix.webhooks import Webhook
from werkzeug.datastructures import MultiDict
from wtforms.validators import Regexp

from shop.admin import forms as admin_forms
from shop.admin.forms import STOCK_SHOWN
from shop.extensions import db
from shop.models import Role, User
from shop.store import cart, checkout
from shop.store.models import Order, Product
from shop.storefront import forms as store_forms
from tests.conftest import STRIPE_WEBHOOK_SECRET
from tests.payments.support import stripe_headers
from tests.support import NEW_ADDRESS, WEBHOOK_SECRET, csrf_token, signed_headers

HUGE = [str(2**31), str(2**63 - 1), str(2**63), str(2**64), "9" * 30, "9" * 5000]
NASTY = ["\x00", "x\x00", "-1", "0", "1.5", "%", "' OR '1'='1", "../../etc/passwd", "\\evil.example/", "a" * 3000, ""]
FORM_FIELDS = [
    "quantity", "slug", "next", "status", "role", "stock", "seen_stock", "active", "idempotency_key",
    "expected_total", "name", "price", "currency", "description", "image", "q",
]  # fmt: skip
QUERY_FIELDS = ["q", "page", "status", "next", "deleted"]
ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
STRIPE_WEBHOOK, CLERK_WEBHOOK = "/api/webhooks/stripe", "/api/webhooks/clerk"
# The event types each webhook is walked with, in turn; None: the hostile value is the type (and,
# for Stripe, the event's id). charge.refunded goes as a partial refund (`refunded` false): a whole
# refund of an order the shop does not know yet is a 500 on purpose, so that Stripe retries it later.
WEBHOOK_KINDS: dict[str, list[str | None]] = {
    STRIPE_WEBHOOK: [
        None,
        "checkout.session.completed",
        "checkout.session.expired",
        "checkout.session.async_payment_failed",
        "charge.refunded",
        "refund.failed",
    ],
    CLERK_WEBHOOK: [None, "user.created", "user.updated", "user.deleted"],
}


def stripe_signed(body: bytes, secret: str) -> dict[str, str]:
    """Stripe-Signature for `body`: the stripe library's own for text; by hand for bytes that are not
    UTF-8, which the library cannot sign."""
    try:
        return stripe_headers(body, secret=secret)
    except UnicodeDecodeError:
        return {"Stripe-Signature": stripe_signature(body, secret), "Content-Type": "application/json; charset=utf-8"}


def stripe_signature(body: bytes, secret: str) -> str:
    """Stripe's scheme: t=<ts>,v1=<hex HMAC-SHA256, keyed by the secret, of "<ts>." and the body>."""
    timestamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def svix_signed(body: bytes, secret: str) -> dict[str, str]:
    """Svix's headers for `body`: svix's own signature for text; by hand for bytes that are not UTF-8."""
    try:
        return signed_headers(body, secret=secret)
    except UnicodeDecodeError:
        return svix_headers(body, secret)


def svix_headers(body: bytes, secret: str) -> dict[str, str]:
    """Svix's scheme: v1,<base64 HMAC-SHA256, keyed by the secret's base64 part, of "<id>.<ts>." and the body>."""
    svix_id, timestamp = f"msg_{uuid.uuid4().hex}", int(time.time())
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{svix_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "svix-id": svix_id,
        "svix-timestamp": str(timestamp),
        "svix-signature": "v1," + base64.b64encode(mac).decode(),
        "content-type": "application/json",
    }


def webhook_event(rule: str, form: list[tuple[str, str]], kind: str | None, serial: int) -> dict[str, Any]:
    """An event for the webhook at `rule` carrying the form's hostile values where the shop reads them
    (ids, references, the order's key, names, e-mail), and the rest of the form beside them."""
    value = form[0][1] if form else ""
    if rule == STRIPE_WEBHOOK:
        session = {
            **dict(form),
            "id": value,
            "object": "checkout.session",
            "client_reference_id": value,
            "metadata": {"order_id": value, "order_key": value},
            "payment_intent": value,
            "payment_status": "paid",
            "refunded": False,  # see WEBHOOK_KINDS
            "failure_reason": value,
        }
        envelope = {"id": value, "type": value} if kind is None else {"id": f"evt_walk_{serial}", "type": kind}
        return {**envelope, "object": "event", "created": value, "livemode": False, "data": {"object": session}}
    user = {
        **dict(form),
        "object": "user",
        "id": value,
        "email_addresses": [{"id": "idn_walk", "object": "email_address", "email_address": value}],
        "primary_email_address_id": "idn_walk",
        "first_name": value,
        "last_name": value,
        "image_url": value,
        "updated_at": 1_700_000_000_000,
    }
    return {"object": "event", "type": value if kind is None else kind, "data": user, "instance_id": "ins_walk"}


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
        self.deliveries = 0
        self.form_tokens: dict[str, tuple[str | None, str]] = {}  # visitor: (their session cookie, a form token)
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
        if rule in WEBHOOK_KINDS and method == "POST":
            kinds = WEBHOOK_KINDS[rule]
            event = webhook_event(rule, form, kinds[self.deliveries % len(kinds)], self.deliveries)
            self.deliveries += 1
            return self.deliver(rule, json.dumps(event).encode(), client=client)
        if method == "GET":
            return client.get(url)
        data = MultiDict(form)
        if with_csrf:
            data.setlist("csrf_token", [self.form_token(who)])
        return client.open(url, method=method, data=data)

    def form_token(self, who: str) -> str:
        """A valid form token for the visitor's session: a new one (support.csrf_token) whenever their
        session cookie is not the one the last token was made for (a sign-out empties the session, a
        flash rewrites it), the same one otherwise. A new token for every form was an eighth of the walk."""
        client = self.visitors[who]
        cached = self.form_tokens.get(who)
        if cached is None or cached[0] != self._session_cookie(client):
            token = csrf_token(self.app, client)
            cached = self.form_tokens[who] = (self._session_cookie(client), token)
        return cached[1]

    def _session_cookie(self, client: FlaskClient) -> str | None:
        cookie = client.get_cookie(self.app.config["SESSION_COOKIE_NAME"])
        return cookie.value if cookie else None

    def deliver(self, rule: str, body: bytes, *, client: FlaskClient | None = None):
        """POST `body` to the webhook at `rule`, signed with the secret the app checks."""
        if rule == STRIPE_WEBHOOK:
            headers = stripe_signed(body, self.app.config["STRIPE_WEBHOOK_SECRETS"][0])
        else:
            headers = svix_signed(body, self.app.config["CLERK_WEBHOOK_SECRETS"][0])
        return (client or self.visitors["signed out"]).post(rule, data=body, headers=headers)


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


def test_a_newline_after_a_checked_value_is_refused(shop, logs):
    """`$` also matches before a final newline, and WTForms' Regexp calls re.match: "new\\n" passed the
    address choice and then failed int() (a 500); a key ending in a newline was stored with the order."""
    client = shop.visitors["shopper"]
    with shop.app.app_context():
        shopper = db.session.scalar(select(User.id).where(User.clerk_id == "user_walk_shopper"))
        cart.add(shopper, slug="walk-mug", quantity=1)
        orders_before = db.session.scalar(select(func.count()).select_from(Order))
    fields = {"csrf_token": csrf_token(shop.app, client), **NEW_ADDRESS}
    response = client.post(
        "/checkout", data={**fields, "idempotency_key": "walk-order-key-0003", "address_id": "new\n"}
    )
    assert response.status_code == 400 and "Choose a shipping address" in response.get_data(as_text=True)
    response = client.post("/checkout", data={**fields, "idempotency_key": "walk-order-key-0004\n"})
    assert (response.status_code, response.headers["Location"]) == (302, "/checkout")
    assert checkout.OUT_OF_DATE in client.get("/checkout").get_data(as_text=True)
    with shop.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == orders_before
    assert errors_logged(logs) == []


def test_every_pattern_of_the_forms_matches_whole_values():
    """Each Regexp of the shop's forms, and the checkout's key pattern, ends in \\Z (see the test above)."""
    patterns = {"checkout.KEY_PATTERN": checkout.KEY_PATTERN}
    for module in (store_forms, admin_forms):
        for form_name, form in vars(module).items():
            if not (isinstance(form, type) and issubclass(form, FlaskForm)):
                continue
            for field_name, field in vars(form).items():
                for validator in getattr(field, "kwargs", {}).get("validators") or []:
                    if isinstance(validator, Regexp):
                        patterns[f"{form_name}.{field_name}"] = validator.regex
    assert {"CheckoutForm.address_id", "AddressForm.country", "ProductForm.slug", "ProductForm.image"} <= set(patterns)
    assert [name for name, pattern in patterns.items() if not pattern.pattern.endswith("\\Z")] == []


def test_ids_in_urls_are_ascii_digits_matched_whole(shop, logs):
    """`\\d` also matches other scripts' digits: product 12 was also at /admin/products/1 and an
    Arabic-Indic 2 (the first digit was already [1-9]). And a converter's pattern is matched whole
    (Werkzeug ends it with \\Z): no trailing newline."""
    with shop.app.app_context():
        db.session.add_all(Product(slug=f"walk-digits-{n}", name="Digits", price_cents=100) for n in range(10))
        db.session.commit()
        product_id = db.session.scalar(select(func.max(Product.id)))
    assert product_id >= 10
    first, *rest = str(product_id)
    other_script = first + "".join(chr(0x0660 + int(digit)) for digit in rest)  # Arabic-Indic digits
    admin = shop.visitors["admin"]
    assert admin.get(f"/admin/products/{product_id}").status_code == 200
    assert admin.get(f"/admin/products/{quote(other_script)}").status_code == 404
    assert admin.get(f"/admin/products/{product_id}%0A").status_code == 404
    assert shop.visitors["signed out"].get("/products/walk-mug%0A").status_code == 404
    assert errors_logged(logs) == []


def test_the_stock_a_form_showed_is_bounded_by_the_column(shop, logs):
    """`seen_stock` (hidden) is compared with products.stock in SQL: 30 digits were a 500 there
    (NumericValueOutOfRange). Refused with a sentence now, by the edit form and by the list's stock box;
    and the bound is the column's, not the 1,000,000 a person may type: a larger stock can be shown."""
    admin = shop.visitors["admin"]
    edit_url = f"/admin/products/{shop.product_id}"
    fields = {"name": "Mug", "slug": "walk-mug", "price": "10", "currency": "EUR", "stock": "7", "active": "y"}
    for seen in ("9" * 30, str(2**31), "-1", "x", "5\n" + "5"):
        edit = admin.post(edit_url, data={"csrf_token": csrf_token(shop.app, admin), **fields, "seen_stock": seen})
        assert edit.status_code == 200 and STOCK_SHOWN in edit.get_data(as_text=True), seen
        box = admin.post(
            f"{edit_url}/stock", data={"csrf_token": csrf_token(shop.app, admin), "stock": "7", "seen_stock": seen}
        )
        assert box.status_code == 302 and STOCK_SHOWN in admin.get("/admin/products").get_data(as_text=True), seen
    with shop.app.app_context():
        assert db.session.get_one(Product, shop.product_id).stock == 49  # one in the shopper's order
    # A stale stock: the form is drawn again over the stock as it is now, so the next save goes through.
    stale = admin.post(edit_url, data={"csrf_token": csrf_token(shop.app, admin), **fields, "seen_stock": "48"})
    assert "The stock changed to 49 while you were editing" in stale.get_data(as_text=True)
    assert 'name="seen_stock" type="hidden" value="49"' in stale.get_data(as_text=True)
    with shop.app.app_context():
        db.session.execute(update(Product).where(Product.id == shop.product_id).values(stock=2_000_000))
        db.session.commit()
    box = admin.post(
        f"{edit_url}/stock", data={"csrf_token": csrf_token(shop.app, admin), "stock": "10", "seen_stock": "2000000"}
    )
    assert box.status_code == 302
    with shop.app.app_context():
        assert db.session.get_one(Product, shop.product_id).stock == 10
    assert errors_logged(logs) == []


def test_a_price_past_decimals_range_is_a_form_error(shop, logs):
    """Decimal reads "1e999999999999999999", but times 100 it overflows (decimal.Overflow: was a 500)."""
    admin = shop.visitors["admin"]
    fields = {"name": "Mug", "slug": "walk-mug", "currency": "EUR", "stock": "49", "seen_stock": "49"}
    for price in ("1e999999999999999999", "9E999999"):
        edit = admin.post(
            f"/admin/products/{shop.product_id}",
            data={"csrf_token": csrf_token(shop.app, admin), **fields, "price": price},
        )
        assert edit.status_code == 200 and "Enter a price such as 12.50." in edit.get_data(as_text=True), price
    with shop.app.app_context():
        assert db.session.get_one(Product, shop.product_id).price_cents == 1000
    assert errors_logged(logs) == []


# --- every route, every visitor, a fixed set of nasty values ------------------------------------------------


def test_every_route_with_nasty_values(shop, logs):
    walked = 0
    webhook_answers: dict[str, set[int]] = {rule: set() for rule in WEBHOOK_KINDS}
    values = [*HUGE, *NASTY, str(shop.order_id), str(shop.product_id)]
    # The order and the product are each the first row of their table, so both ids are "1": every other
    # route got the very same request twice (a twentieth of the walk). A webhook keeps both, in the same
    # order as ever: there each value goes out with the next event type in turn, so they are two events.
    distinct = list(dict.fromkeys(values))
    for rule, method in shop.rules:
        arguments = len(ARGUMENT.findall(rule))
        for who in shop.visitors:
            for value in values if rule in WEBHOOK_KINDS else distinct:
                query = [(field, value) for field in QUERY_FIELDS]
                form = [(field, value) for field in FORM_FIELDS]
                response = shop.request(who, rule, method, [value] * arguments, query, form)
                assert response.status_code < 500, (who, method, rule, value[:40], response.status_code)
                webhook_answers.get(rule, set()).add(response.status_code)
                walked += 1
    assert errors_logged(logs) == []
    assert walked >= len(shop.rules) * 3 * len(HUGE + NASTY)
    # The signatures were accepted: some hostile events were taken in (200), so the parsers were walked.
    assert all(200 in answers for answers in webhook_answers.values()), webhook_answers


NASTY_BODIES: dict[str, bytes] = {
    "arrays 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "objects 50,000 deep in an event": (
        b'{"object": "event", "id": "evt_walk_deep", "type": "user.created", "data": '
        + b'{"a": ' * 50_000
        + b"1"
        + b"}" * 50_000
        + b"}"
    ),
    "a NUL escape": json.dumps(
        {"object": "event", "id": "evt_walk_nul", "type": "user.created", "data": {"id": "user_\x00", "updated_at": 1}}
    ).encode(),
    "a lone surrogate": b'{"object": "event", "id": "evt_\\ud800", "type": "user.\\udfff", "data": {"object": {}}}',
    "not UTF-8": b'{"object": "event", "id": "evt_walk_\xff\xfe", "type": "\x80", "data": {}}',
    "a number of 5,000 digits": b"1" + b"0" * 4999,
    "an id of 5,000 digits": b'{"object": "event", "id": ' + b"9" * 5000 + b', "type": "x", "data": {}}',
    "a float past double": b'{"object": "event", "id": "evt_walk_inf", "type": "refund.failed", "data": 1e999}',
    "empty": b"",
    "null": b"null",
    "a string": b'"event"',
    "truncated": b'{"object": "event", "id": "evt_walk_cut", "type": "user.cre',
    "odd types in the envelope": json.dumps(
        {"object": "event", "id": ["evt_walk_list"], "type": {"user.created": 1}, "data": "user"}
    ).encode(),
    "numbers for strings": json.dumps(
        {"object": "event", "id": 12345, "type": 1.5, "data": {"object": {"id": 7}, "id": 7, "updated_at": "1"}}
    ).encode(),
    "nulls everywhere": json.dumps({"object": None, "id": None, "type": None, "data": None}).encode(),
    "a Stripe session of odd types": json.dumps(
        {
            "object": "event",
            "id": "evt_walk_odd_session",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": ["cs_x"],
                    "client_reference_id": 10**30,
                    "metadata": {"order_id": ["1"], "order_key": {"a": 1}},
                    "payment_intent": False,
                    "payment_status": ["paid"],
                }
            },
        }
    ).encode(),
    "a Stripe refund of odd types": json.dumps(
        {
            "object": "event",
            "id": "evt_walk_odd_refund",
            "type": "refund.failed",
            "data": {"object": {"payment_intent": [], "metadata": "x", "failure_reason": {"a": 1}}},
        }
    ).encode(),
    "digits of another script as the order": json.dumps(
        {
            "object": "event",
            "id": "evt_walk_digits",
            "type": "checkout.session.expired",
            "data": {"object": {"id": "cs_walk", "client_reference_id": "\u00b2", "metadata": {"order_id": "\u00b2"}}},
        }
    ).encode(),
    "a Clerk user of odd types": json.dumps(
        {
            "object": "event",
            "type": "user.updated",
            "data": {
                "id": "user_walk_odd",
                "updated_at": 2**70,
                "email_addresses": [None, 1, {"id": "e", "email_address": 5}],
                "primary_email_address_id": "e",
                "first_name": ["Ada"],
            },
        }
    ).encode(),
    "a Clerk deletion of a list": json.dumps(
        {"object": "event", "type": "user.deleted", "data": {"id": ["x"]}}
    ).encode(),
}


def test_the_signatures_made_by_hand_are_the_senders_schemes():
    """Checked on a UTF-8 body by the libraries' own verifiers: what the walk signs by hand (bytes that
    are not UTF-8) is signed as Stripe and Svix sign, so only the body can be what the webhook refuses."""
    body = json.dumps({"object": "event", "type": "ping", "text": "caf\u00e9"}, ensure_ascii=False).encode()
    stripe.WebhookSignature.verify_header(
        body.decode(), stripe_signature(body, STRIPE_WEBHOOK_SECRET), STRIPE_WEBHOOK_SECRET
    )
    Webhook(WEBHOOK_SECRET).verify(body, svix_headers(body, WEBHOOK_SECRET))


def test_the_webhooks_with_nasty_signed_bodies(shop, logs):
    """Each body signed as its sender would sign it, so it meets the webhook's parser: never a 5xx."""
    webhooks = sorted(rule for rule, method in shop.rules if rule.startswith("/api/webhooks/") and method == "POST")
    assert webhooks == sorted(WEBHOOK_KINDS)  # a new webhook needs its sender's signing here
    answers = []
    for rule in webhooks:
        for name, body in NASTY_BODIES.items():
            try:
                status: int | str = shop.deliver(rule, body).status_code
            except Exception as exc:  # TESTING: what the app raises reaches the test; list it with the rest
                status = f"raised {type(exc).__name__}"
            answers.append((rule, name, status))
    failed = [answer for answer in answers if not isinstance(answer[2], int) or answer[2] >= 500]
    assert not failed, "\n".join(map(str, failed))
    assert errors_logged(logs) == []


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
