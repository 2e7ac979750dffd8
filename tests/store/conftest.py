"""Store fixtures: products written straight to the database, CSRF tokens read from rendered pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from shop.extensions import db
from shop.models import User
from shop.store.models import Product

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
