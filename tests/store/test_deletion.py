"""A user deleted in Clerk (a signed `user.deleted` webhook): the cart is gone, the orders stay,
and staff still see them, as a deleted customer with the e-mail the order was placed with."""

import re

from sqlalchemy import func, select

from shop.extensions import db
from shop.models import Role, User
from shop.store.models import Address, Cart, CartItem, Order, OrderItem
from tests.store.conftest import checkout_fields, latest_order_id, on_standin_page
from tests.support import deleted_event


def test_deletion_webhook_removes_the_cart_and_keeps_the_orders(
    app, client, sign_in, make_product, post_form, deliver, stock_of, stripe_standin
):
    mug = make_product("mug", stock=10, name="Mug")
    sign_in("user_leaving", email="leaving@example.com")
    post_form("/cart/add", {"slug": "mug", "quantity": "2"})
    payment_url = client.post("/checkout", data=checkout_fields(client)).headers["Location"]
    order_id = latest_order_id(app, "user_leaving")
    client.get(on_standin_page(client, payment_url, "pay").headers["Location"])  # paid, as staff ship only that
    post_form("/cart/add", {"slug": "mug", "quantity": "1"})  # a new cart line after the order

    assert deliver(deleted_event("user_leaving")).json == {"status": "processed"}

    with app.app_context():
        user = db.session.scalar(select(User).where(User.clerk_id == "user_leaving"))
        assert user.is_deleted and user.email is None
        assert db.session.scalar(select(func.count()).select_from(Cart)) == 0
        assert db.session.scalar(select(func.count()).select_from(CartItem)) == 0
        order = db.session.get(Order, order_id)
        assert (order.user_id, order.email, order.status) == (user.id, "leaving@example.com", "placed")
        assert order.ship_line1 == "12 Rue de la Paix"  # the order keeps its copy of the address
        assert db.session.scalar(select(func.count()).select_from(Address)) == 0  # the address book is erased
        assert db.session.scalar(select(func.count()).select_from(OrderItem)) == 1
    assert stock_of(mug) == 8  # the cart line never took stock; the order keeps its units

    # the tombstone's still-valid session is signed out
    assert client.get("/orders").status_code == 302
    assert client.get("/api/orders").status_code == 401

    staff = app.test_client()
    sign_in("user_staff", as_client=staff, role=Role.ADMIN)
    listing = staff.get("/admin/orders").get_data(as_text=True)
    row = listing[listing.index(f'data-order-id="{order_id}"') :]
    row = row[: row.index("</tr>")]
    assert "deleted customer" in row and "leaving@example.com" in row
    detail = staff.get(f"/admin/orders/{order_id}").get_data(as_text=True)
    assert "deleted customer" in detail and "leaving@example.com" in detail and "Mug" in detail
    # and staff can still move it
    token = re.search(r'name="csrf_token" value="([^"]+)"', detail).group(1)
    staff.post(f"/admin/orders/{order_id}/status", data={"csrf_token": token, "status": "shipped"})
    with app.app_context():
        assert db.session.get(Order, order_id).status == "shipped"


def test_a_replayed_deletion_changes_nothing_more(app, sign_in, make_product, post_form, deliver):
    make_product("mug")
    sign_in("user_twice")
    post_form("/cart/add", {"slug": "mug", "quantity": "1"})
    assert deliver(deleted_event("user_twice")).json == {"status": "processed"}
    assert deliver(deleted_event("user_twice")).json == {"status": "processed"}  # a new svix-id: already deleted
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Cart)) == 0
