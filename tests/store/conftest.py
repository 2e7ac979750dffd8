"""Store fixtures: products written straight to the database, CSRF tokens read from rendered pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from shop.extensions import db
from shop.models import User
from shop.store.models import Order, Product
from tests.support import NEW_ADDRESS

CSRF_FIELD = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')


def csrf_token_from(client: FlaskClient, path: str = "/") -> str:
    """The CSRF token of `client`'s session, as a form on `path` carries it."""
    response = client.get(path)
    assert response.status_code == 200, f"GET {path}: {response.status_code}"
    match = CSRF_FIELD.search(response.get_data(as_text=True))
    assert match, f"no csrf_token field on {path}"
    return match.group(1)


@pytest.fixture
def make_product(app):
    """A product row; returns its id."""
    counter = iter(range(1, 10_000))

    def make(slug: str | None = None, *, stock: int = 10, price_cents: int = 1000, **fields: Any) -> int:
        n = next(counter)
        with app.app_context():
            product = Product(
                slug=slug or f"product-{n}",
                name=fields.pop("name", f"Product {n}"),
                description=fields.pop("description", "A test product."),
                price_cents=price_cents,
                currency=fields.pop("currency", "EUR"),
                stock=stock,
                active=fields.pop("active", True),
                image=fields.pop("image", None),
                **fields,
            )
            db.session.add(product)
            db.session.commit()
            return product.id

    return make


@pytest.fixture
def stock_of(app):
    def read(product_id: int) -> int:
        with app.app_context():
            value = db.session.scalar(db.select(Product.stock).where(Product.id == product_id))
            db.session.rollback()
            return value

    return read


@pytest.fixture
def user_id(app):
    """The mirror row id of a Clerk id."""

    def find(clerk_id: str) -> int:
        with app.app_context():
            return db.session.scalar(db.select(User.id).where(User.clerk_id == clerk_id))

    return find


@pytest.fixture
def post_form(client: FlaskClient):
    """POST a form as the browser would: with the CSRF token its page rendered."""

    def post(path: str, data: dict[str, Any] | None = None, *, form_page: str = "/", as_client=None, **kwargs):
        who = as_client or client
        return who.post(path, data={"csrf_token": csrf_token_from(who, form_page), **(data or {})}, **kwargs)

    return post


# --- checkout through the form, and paying on the local Stripe stand-in's page ------------------------------

CHECKOUT_FIELDS = re.compile(r'name="(csrf_token|idempotency_key|expected_total)" value="([^"]+)"')


def checkout_fields(client: FlaskClient, **extra: str) -> dict[str, str]:
    """What the checkout page's form would send, with a new shipping address typed in."""
    page = client.get("/checkout").get_data(as_text=True)
    return {**dict(CHECKOUT_FIELDS.findall(page)), **NEW_ADDRESS, **extra}


def latest_order_id(app, clerk_id: str) -> int | None:
    with app.app_context():
        order_id = db.session.scalar(
            db.select(Order.id)
            .join(User, User.id == Order.user_id)
            .where(User.clerk_id == clerk_id)
            .order_by(Order.id.desc())
        )
        db.session.rollback()
        return order_id


def on_standin_page(client: FlaskClient, payment_url: str, action: str = "pay"):
    """Press a button on the stand-in's hosted-checkout page, as the shopper would."""
    path = payment_url.split("://", 1)[-1].split("/", 1)[1]
    token = csrf_token_from(client, f"/{path}")
    return client.post(f"/{path}", data={"csrf_token": token, "action": action})


@pytest.fixture
def mark_paid(app):
    """Set an order's payment status to paid (test set-up, as if Stripe's event had arrived)."""

    def mark(order_id: int) -> None:
        with app.app_context():
            db.session.execute(db.update(Order).where(Order.id == order_id).values(payment_status="paid"))
            db.session.commit()

    return mark


@pytest.fixture
def payment_status(app):
    def read(order_id: int) -> tuple[str, str]:
        with app.app_context():
            row = db.session.execute(db.select(Order.status, Order.payment_status).where(Order.id == order_id)).one()
            db.session.rollback()
            return tuple(row)

    return read
