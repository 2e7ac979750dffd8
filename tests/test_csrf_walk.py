"""CSRF, on every route of the URL map that changes state (Flask-WTF's WTF_CSRF_METHODS: POST, PUT,
PATCH, DELETE), not on a list kept by hand: as a signed-in shopper and as an admin, a form sent
without the session's token, with a made-up one or with another session's is refused (400, the shop's
CSRF answer) and nothing changes: every table and the stand-ins' files are compared.

The routes CSRF protection lets through are read from the app (Flask-WTF's exempt views and
blueprints) and must be exactly the ones named in EXEMPT, each guarded otherwise: a signature, a
secret key, or JSON only. A route exempted tomorrow fails here until it is named, with its guard.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from shop.extensions import db
from shop.models import Role
from shop.store.models import Address, Order, Product
from tests.support import NEW_ADDRESS, clerk_user, csrf_token, event, signed_headers

REFUSED = "did not come from this shop"  # shop/errors.py's answer to a CSRFError (400)
WEBHOOK_SIGNATURE, SECRET_KEY, JSON_ONLY = 400, 401, 415
# (method, rule) → what an unsigned, keyless form gets there instead of the CSRF check's 400.
EXEMPT: dict[tuple[str, str], int] = {
    ("POST", "/api/webhooks/stripe"): WEBHOOK_SIGNATURE,  # Stripe-Signature
    ("POST", "/api/webhooks/clerk"): WEBHOOK_SIGNATURE,  # svix-signature
    # The local Stripe stand-in's API (SHOP_DEV_STRIPE): the stand-in's secret key, as Stripe's.
    ("POST", "/dev-stripe/v1/checkout/sessions"): SECRET_KEY,
    ("POST", "/dev-stripe/v1/checkout/sessions/<session_id>/expire"): SECRET_KEY,
    ("POST", "/dev-stripe/v1/refunds"): SECRET_KEY,
    ("POST", "/dev-stripe/v1/customers"): SECRET_KEY,
    ("POST", "/dev-stripe/v1/customers/<customer_id>"): SECRET_KEY,
    # The local Clerk stand-in (SHOP_DEV_AUTH), exempt as a blueprint: its Backend API needs its key…
    **{
        (method, rule): SECRET_KEY
        for method in ("POST", "PUT", "PATCH", "DELETE")
        for rule in ("/dev-clerk/v1/", "/dev-clerk/v1/<path:unknown>")
    },
    # …and its browser calls take JSON only, which a cross-site form cannot send (nor a cross-site
    # fetch, without a CORS preflight this app never answers).
    **{
        ("POST", f"/dev-clerk/{call}"): JSON_ONLY
        for call in ("sign-in", "tokens", "sign-out", "profile", "delete-account")
    },
    ("PATCH", "/dev-clerk/me/metadata"): JSON_ONLY,  # clerk-js's user.updateMetadata, as the stand-in plays it
    ("POST", "/dev-clerk/me/sessions/<session_id>/revoke"): JSON_ONLY,  # clerk-js's session.revoke()
    ("POST", "/dev-clerk/v1/sessions/<session_id>/revoke"): SECRET_KEY,  # the Backend API's revoke
}
ARGUMENT = re.compile(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>")
# The tables behind the ids in paths, for the ids that are not made below.
ID_TABLES = {"event_id": "webhook_events", "mail_id": "mail_outbox"}


def changing_methods(app: Flask) -> set[str]:
    return set(app.config["WTF_CSRF_METHODS"])


def changing_rules(app: Flask) -> list[tuple[str, str]]:
    """(method, rule) of every route that changes state, from the URL map."""
    return sorted(
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method in changing_methods(app)
    )


def exempt_rules(app: Flask) -> set[tuple[str, str]]:
    """The routes CSRF protection lets through, decided as Flask-WTF's CSRFProtect._is_exempt decides:
    the view's blueprint is exempt, or the view itself ("module.name")."""
    csrf = app.extensions["csrf"]
    exempt = set()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        blueprint = app.blueprints.get(rule.endpoint.rpartition(".")[0])
        if blueprint in csrf._exempt_blueprints or f"{view.__module__}.{view.__name__}" in csrf._exempt_views:
            exempt |= {(method, rule.rule) for method in rule.methods or () if method in changing_methods(app)}
    return exempt


def state(app: Flask) -> dict[str, Any]:
    """Every row of every table, and every file of the stand-ins' stores."""
    with app.app_context():
        tables = {
            table.name: sorted(repr(tuple(row)) for row in db.session.execute(select(table)))
            for table in db.metadata.sorted_tables
        }
        db.session.rollback()
    folders = [app.config.get(name) for name in ("SHOP_DEV_STRIPE_DIR", "SHOP_DEV_CLERK_DIR")]
    files = {
        str(path): path.read_bytes()
        for folder in folders
        if folder
        for path in sorted(Path(folder).rglob("*"))
        if path.is_file()
    }
    return {"tables": tables, "files": files}


class Shop:
    """A shop where every state-changing form would do something: a shopper with an order (and its
    Stripe stand-in session), an address in the book and a cart line; an admin; another user, and a
    webhook event of theirs (to replay)."""

    def __init__(self, app: Flask, make_user, tokens):
        self.app = app
        assert app.config["WTF_CSRF_ENABLED"]  # Flask-WTF's default, never turned off for the suite
        make_user("user_csrf_shopper")
        make_user("user_csrf_admin", role=Role.ADMIN)
        other = make_user("user_csrf_other")
        expires = int(time.time()) + 3600
        self.visitors: dict[str, FlaskClient] = {}
        for who in ("shopper", "admin"):
            self.visitors[who] = app.test_client()
            self.visitors[who].set_cookie("__session", tokens.mint(f"user_csrf_{who}", exp=expires))
        with app.app_context():
            mug = Product(slug="csrf-mug", name="Mug", price_cents=1000, currency="EUR", stock=10)
            db.session.add_all([mug, Product(slug="csrf-pen", name="Pen", price_cents=200, currency="EUR", stock=10)])
            db.session.commit()
            self.mug_id = mug.id
        shopper = self.visitors["shopper"]
        self.post_with_token(shopper, "/cart/add", {"slug": "csrf-mug", "quantity": "1"})
        placed = self.post_with_token(shopper, "/checkout", {"idempotency_key": "csrf-walk-key-00001", **NEW_ADDRESS})
        assert placed.status_code == 303 and "/dev-stripe/checkout/cs_" in placed.headers["Location"]
        self.post_with_token(shopper, "/cart/add", {"slug": "csrf-pen", "quantity": "1"})
        body = json.dumps(event("user.updated", clerk_user("user_csrf_other", email="other@example.com")))
        assert app.test_client().post("/api/webhooks/clerk", data=body, headers=signed_headers(body)).status_code == 200
        with app.app_context():
            self.values = {
                "product_id": str(self.mug_id),
                "order_id": str(db.session.scalar(select(func.max(Order.id)))),
                "address_id": str(db.session.scalar(select(func.max(Address.id)))),
                "user_id": str(other.id),
                "session_id": placed.headers["Location"].rsplit("/", 1)[-1],
            }
            for argument, name in ID_TABLES.items():
                table = db.metadata.tables.get(name)
                found = db.session.scalar(select(func.min(table.c.id))) if table is not None else None
                self.values[argument] = str(found or 1)
            db.session.rollback()
        assert all(self.values.values())
        # What a form of each route would carry, so that with the right token each would act.
        self.form = {
            **NEW_ADDRESS,
            **{"slug": "csrf-mug", "quantity": "3", "stock": "4", "seen_stock": "9", "active": "0"},
            **{"status": "shipped", "role": "ADMIN", "action": "pay", "make_default": "y", "next": "/"},
            **{"name": "Mallory", "line1": "1 Rue Forge", "postal_code": "75001", "city": "Paris", "country": "FR"},
            **{"price": "1", "currency": "EUR", "idempotency_key": "csrf-walk-key-00002"},
        }

    def post_with_token(self, client: FlaskClient, path: str, form: dict[str, str]):
        return client.post(path, data={"csrf_token": csrf_token(self.app, client), **form})

    def url(self, rule: str) -> str:
        return ARGUMENT.sub(lambda match: quote(self.values.get(match[1], "1"), safe=""), rule)


@pytest.fixture
def shop(app, make_user, tokens, stripe_standin) -> Shop:
    return Shop(app, make_user, tokens)


def test_every_route_that_changes_state_refuses_a_forged_form(shop):
    attacker = shop.app.test_client()
    walked = 0
    before = state(shop.app)
    for method, rule in changing_rules(shop.app):
        if (method, rule) in EXEMPT:
            continue  # below
        for who, client in shop.visitors.items():
            csrf_token(shop.app, client)  # the visitor's session holds its token, as after any page with a form
            for token in (None, "forged-token", csrf_token(shop.app, attacker)):
                data = {**shop.form, **({"csrf_token": token} if token else {})}
                response = client.open(shop.url(rule), method=method, data=data)
                answer = (who, method, rule, token and token[:12], response.status_code)
                assert response.status_code == 400 and REFUSED in response.get_data(as_text=True), answer
                assert state(shop.app) == before, answer
                walked += 1
    assert walked >= 2 * 3 * 15
    # The comparison sees a change: the address book's delete, with the shopper's own token, deletes.
    shopper = shop.visitors["shopper"]
    deleted = shop.post_with_token(shopper, shop.url("/account/addresses/<id:address_id>/delete"), {})
    assert deleted.status_code == 302 and state(shop.app)["tables"] != before["tables"]


def test_the_exempt_routes_are_the_webhooks_and_the_stand_ins_json_apis(make_app, tmp_path):
    """Read from the app with both local stand-ins on; the Clerk stand-in's app has no routes besides
    its own that the walk above has not been through."""
    shop_app, standin_app = make_app(), make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    assert shop_app.config["SHOP_DEV_STRIPE"] and not shop_app.config["SHOP_DEV_AUTH"]
    assert exempt_rules(shop_app) | exempt_rules(standin_app) == set(EXEMPT)
    walked_above = set(changing_rules(shop_app))
    assert set(changing_rules(standin_app)) - exempt_rules(standin_app) <= walked_above


def test_each_exempt_route_is_guarded_otherwise(shop, make_app, tmp_path):
    """An unsigned, keyless form, as a cross-site page would send: refused by the route's own guard,
    and nothing changes. As the shopper and the admin; the Clerk stand-in's app, signed out (it
    verifies sessions with a key of its own)."""
    standin_app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    visits = [(shop.app, who, client) for who, client in shop.visitors.items()]
    visits.append((standin_app, "signed out", standin_app.test_client()))
    guarded = set()
    for app, who, client in visits:
        before = state(app)
        for method, rule in sorted(exempt_rules(app)):
            response = client.open(shop.url(rule), method=method, data=shop.form)
            answer = (who, method, rule, response.status_code)
            assert response.status_code == EXEMPT.get((method, rule)), answer
            assert state(app) == before, answer
            guarded.add((method, rule))
    assert guarded == set(EXEMPT)
