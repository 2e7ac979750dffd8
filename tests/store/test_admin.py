"""The staff's pages: orders (filter, move), products (create, edit, stock, activate), users (search,
role change logged), webhook events (latest, by status, payload, replay a failed one)."""

import json
import re

import pytest
from markupsafe import escape as html_escape
from sqlalchemy import select

from shop.extensions import db
from shop.models import Role, User, WebhookEvent
from shop.store import cart, checkout
from shop.store.models import Order, Product
from tests.support import clerk_user, event


@pytest.fixture
def staff(app, sign_in):
    staff = app.test_client()
    sign_in("user_admin", as_client=staff, role=Role.ADMIN, email="admin@example.com")
    return staff


def token(client, path: str) -> str:
    return re.search(
        r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', client.get(path).get_data(as_text=True)
    ).group(1)


def page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


@pytest.fixture
def orders_placed(app, make_user, user_id, make_product):
    """Three orders by one shopper: #1 placed, #2 shipped, #3 placed."""
    make_product("mug", stock=20, name="Mug")
    make_user("user_customer", email="customer@example.com", first_name="Cara", last_name="Customer")
    shopper = user_id("user_customer")
    ids = []
    with app.app_context():
        for n in range(3):
            cart.add(shopper, slug="mug", quantity=1)
            ids.append(checkout.place_order(shopper, f"admin-test-key-{n:04d}").order.id)
        db.session.execute(db.update(Order).where(Order.id.in_(ids)).values(payment_status="paid"))
        db.session.execute(db.update(Order).where(Order.id == ids[1]).values(status="shipped"))
        db.session.commit()
    return ids


def test_dashboard_counts(staff, orders_placed):
    html = page(staff, "/admin/")
    assert re.search(r"<strong>2</strong>Placed orders", html)
    assert re.search(r"<strong>1</strong>Shipped orders", html)


def test_orders_filtered_by_status_newest_first(staff, orders_placed):
    first, second, third = orders_placed
    html = page(staff, "/admin/orders")
    assert html.index(f'data-order-id="{third}"') < html.index(f'data-order-id="{first}"')
    assert "Cara Customer" in html and "customer@example.com" in html
    placed = page(staff, "/admin/orders?status=placed")
    assert f'data-order-id="{first}"' in placed and f'data-order-id="{second}"' not in placed
    shipped = page(staff, "/admin/orders?status=shipped")
    assert f'data-order-id="{second}"' in shipped and f'data-order-id="{first}"' not in shipped
    assert "Placed (2)" in html and "Shipped (1)" in html
    assert page(staff, "/admin/orders?status=nonsense").count('data-testid="admin-order-row"') == 3


def test_moving_orders_and_refused_moves(app, staff, orders_placed, caplog):
    first, second, _ = orders_placed
    caplog.set_level("INFO", logger="shop")
    csrf = token(staff, "/admin/orders")
    response = staff.post(
        f"/admin/orders/{first}/status",
        data={"csrf_token": csrf, "status": "shipped", "next": "/admin/orders?status=placed"},
    )
    assert response.headers["Location"] == "/admin/orders?status=placed"
    assert f"Order #{first} is now shipped." in page(staff, "/admin/orders")
    assert f"order {first} moved from placed to shipped by admin user_admin" in caplog.text
    staff.post(f"/admin/orders/{second}/status", data={"csrf_token": csrf, "status": "cancelled"})
    assert f"Order #{second} is shipped and cannot be cancelled; allowed from here: delivered." in page(
        staff, f"/admin/orders/{second}"
    )
    assert staff.post("/admin/orders/999999/status", data={"csrf_token": csrf, "status": "shipped"}).status_code == 404
    with app.app_context():
        assert [db.session.get(Order, i).status for i in (first, second)] == ["shipped", "shipped"]


def test_create_and_edit_a_product(app, staff, client):
    html = page(staff, "/admin/products/new")
    assert '<label for="price">Price</label>' in html
    csrf = token(staff, "/admin/products/new")
    form = {
        "csrf_token": csrf,
        "name": "Blue mug",
        "slug": "blue-mug",
        "description": "Blue.",
        "price": "12.5",
        "currency": "EUR",
        "stock": "7",
        "active": "y",
        "image": "products/ceramic-mug.svg",
    }
    response = staff.post("/admin/products/new", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert "Blue mug is created." in page(staff, "/admin/products")
    assert "€12.50" in page(client, "/products/blue-mug")
    with app.app_context():
        product = db.session.scalar(select(Product).where(Product.slug == "blue-mug"))
        product_id = product.id
        assert (product.price_cents, product.stock, product.image) == (1250, 7, "products/ceramic-mug.svg")

    # validation: messages next to the fields, nothing saved
    bad = staff.post("/admin/products/new", data={**form, "slug": "Blue Mug!", "price": "12.345", "currency": "eu"})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 200
    assert "single dashes" in html and "at most two decimals" in html and "three-letter code" in html
    taken = staff.post("/admin/products/new", data=form)
    assert "another product already uses" in taken.get_data(as_text=True)
    unsafe = staff.post("/admin/products/new", data={**form, "slug": "other", "image": "../../etc/passwd"})
    assert "Image: a file under static/" in unsafe.get_data(as_text=True)

    edit = page(staff, f"/admin/products/{product_id}")
    assert 'value="12.50"' in edit and 'name="seen_stock" type="hidden" value="7"' in edit
    response = staff.post(
        f"/admin/products/{product_id}",
        data={**form, "name": "Navy mug", "price": "14", "stock": "9", "seen_stock": "7"},
    )
    assert response.status_code == 302
    with app.app_context():
        product = db.session.get(Product, product_id)
        assert (product.name, product.price_cents, product.stock) == ("Navy mug", 1400, 9)
    assert staff.get("/admin/products/999999").status_code == 404


def test_stock_edits_never_undo_an_order_placed_meanwhile(app, staff, make_product, make_user, user_id, stock_of):
    mug = make_product("mug", stock=5)
    form_page = page(staff, f"/admin/products/{mug}")  # the form shows stock 5
    assert 'name="seen_stock" type="hidden" value="5"' in form_page
    make_user("user_quick")
    with app.app_context():
        cart.add(user_id("user_quick"), slug="mug", quantity=2)
        checkout.place_order(user_id("user_quick"), "meanwhile-key-0001")
    assert stock_of(mug) == 3
    csrf = token(staff, "/admin/products")
    response = staff.post(f"/admin/products/{mug}/stock", data={"csrf_token": csrf, "stock": "10", "seen_stock": "5"})
    assert response.headers["Location"] == "/admin/products"
    assert "The stock changed to 3 meanwhile; nothing was saved." in page(staff, "/admin/products")
    assert stock_of(mug) == 3
    staff.post(f"/admin/products/{mug}/stock", data={"csrf_token": csrf, "stock": "10", "seen_stock": "3"})
    assert stock_of(mug) == 10
    # the edit form too: it keeps what it showed, and says so
    edit = staff.post(
        f"/admin/products/{mug}",
        data={
            "csrf_token": csrf,
            "name": "Mug",
            "slug": "mug",
            "price": "10",
            "currency": "EUR",
            "stock": "1",
            "seen_stock": "5",
        },
    )
    assert "The stock changed to 10 while you were editing" in edit.get_data(as_text=True)
    assert stock_of(mug) == 10


def test_deactivate_and_activate(app, staff, client, make_product):
    mug = make_product("mug", name="Mug")
    csrf = token(staff, "/admin/products")
    staff.post(f"/admin/products/{mug}/active", data={"csrf_token": csrf, "active": "0"})
    assert client.get("/products/mug").status_code == 404
    assert "Mug" not in page(client, "/")
    assert "Mug is hidden from the catalogue." in page(staff, "/admin/products")
    staff.post(f"/admin/products/{mug}/active", data={"csrf_token": csrf, "active": "1"})
    assert client.get("/products/mug").status_code == 200


def test_users_search_role_and_logged_role_change(app, staff, make_user, user_id, caplog, deliver):
    make_user("user_ann", email="ann@example.com", first_name="Ann", last_name="Smith")
    make_user("user_bob", email="bob@example.com", first_name="Bob", last_name="Jones")
    make_user("user_gone", email="gone@example.com")
    deliver(event("user.deleted", {"object": "user", "id": "user_gone", "deleted": True}))
    html = page(staff, "/admin/users")
    assert "ann@example.com" in html and "bob@example.com" in html and "user_gone" not in html
    assert "ADMIN" in html and "CLIENT" in html
    found = page(staff, "/admin/users?q=ann+sm")
    assert "ann@example.com" in found and "bob@example.com" not in found
    assert "bob@example.com" in page(staff, "/admin/users?q=USER_BOB")
    assert "deleted user" in page(staff, "/admin/users?deleted=1")

    caplog.set_level("INFO", logger="shop")
    csrf = token(staff, "/admin/users")
    staff.post(f"/admin/users/{user_id('user_ann')}/role", data={"csrf_token": csrf, "role": "ADMIN"})
    assert "ann@example.com is now ADMIN." in page(staff, "/admin/users")
    assert "role of user_ann changed from CLIENT to ADMIN by admin user_admin (admin users page)" in caplog.text
    with app.app_context():
        assert db.session.scalar(select(User.role).where(User.clerk_id == "user_ann")) == Role.ADMIN

    staff.post(f"/admin/users/{user_id('user_admin')}/role", data={"csrf_token": csrf, "role": "CLIENT"})
    assert "You cannot remove your own ADMIN role" in page(staff, "/admin/users")
    staff.post(f"/admin/users/{user_id('user_gone')}/role", data={"csrf_token": csrf, "role": "ADMIN"})
    assert "A deleted user has no role to change." in page(staff, "/admin/users")
    staff.post(f"/admin/users/{user_id('user_bob')}/role", data={"csrf_token": csrf, "role": "OWNER"})
    assert "Choose CLIENT or ADMIN." in page(staff, "/admin/users")
    with app.app_context():
        roles = dict(db.session.execute(select(User.clerk_id, User.role)).all())
    assert (roles["user_admin"], roles["user_gone"], roles["user_bob"]) == (Role.ADMIN, Role.CLIENT, Role.CLIENT)


def test_webhook_events_list_filter_payload_and_replay(app, staff, deliver):
    deliver(event("user.created", clerk_user("user_hooked", email="hooked@example.com")), svix_id="msg_ok")
    # A delivery that failed earlier (say the database was down): stored as failed, its effect not applied.
    payload = event("user.created", clerk_user("user_missed", email="missed@example.com"))
    with app.app_context():
        db.session.add(
            WebhookEvent(
                svix_id="msg_failed",
                type="user.created",
                clerk_user_id="user_missed",
                status="failed",
                payload=payload,
                error="OperationalError: connection refused",
            )
        )
        db.session.commit()
        failed_id = db.session.scalar(select(WebhookEvent.id).where(WebhookEvent.svix_id == "msg_failed"))
        ok_id = db.session.scalar(select(WebhookEvent.id).where(WebhookEvent.svix_id == "msg_ok"))

    html = page(staff, "/admin/webhooks")
    assert html.count('data-testid="webhook-row"') == 2
    failed_only = page(staff, "/admin/webhooks?status=failed")
    assert failed_only.count('data-testid="webhook-row"') == 1 and "connection refused" in failed_only

    detail = page(staff, f"/admin/webhooks/{failed_id}")
    assert "msg_failed" in detail and "Replay this event" in detail
    assert html_escape(json.dumps({"email_address": "missed@example.com"})[1:-1]) in detail  # the payload
    assert "Replay this event" not in page(staff, f"/admin/webhooks/{ok_id}")

    csrf = token(staff, f"/admin/webhooks/{failed_id}")
    staff.post(f"/admin/webhooks/{failed_id}/replay", data={"csrf_token": csrf})
    after = page(staff, f"/admin/webhooks/{failed_id}")
    assert "Replayed msg_failed: processed." in after
    assert '<dd data-testid="webhook-status">processed</dd>' in after
    with app.app_context():
        assert db.session.scalar(select(User.email).where(User.clerk_id == "user_missed")) == "missed@example.com"
    staff.post(f"/admin/webhooks/{ok_id}/replay", data={"csrf_token": csrf})
    assert "Only failed events are replayed here" in page(staff, f"/admin/webhooks/{ok_id}")
