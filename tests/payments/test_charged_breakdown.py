"""What was charged, recorded (issue 22 item 4): a paid session's breakdown (subtotal, discount, shipping,
tax, total) is recorded on the order and shown on its page, in the confirmation e-mail and to staff; the
money rule also compares the session's shipping with the order's; an older session shape records NULLs."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from shop.extensions import db
from shop.mail.models import OutboxMail
from shop.models import Role
from shop.store.models import Order
from tests.payments.support import checkout_session, post_event, stripe_event

# A Stripe session of a €10.00 order: €2.00 off with a promotion code, €4.90 shipping, €1.71 tax on top.
BREAKDOWN = {
    "amount_subtotal": 1000,
    "amount_total": 1000 - 200 + 490 + 171,
    "shipping_cost": {"amount_subtotal": 490, "amount_tax": 0, "amount_total": 490, "shipping_rate": "shr_test_1"},
    "total_details": {"amount_discount": 200, "amount_shipping": 490, "amount_tax": 171},
}


def completed(order_id: int, **fields):
    return stripe_event("checkout.session.completed", checkout_session(order_id, f"cs_test_{order_id}", **fields))


def ask_shipping(app, order_id: int, cents: int, name: str = "Colissimo") -> None:
    """As the shipping choice at checkout records it on the order (its total is the lines plus shipping)."""
    with app.app_context():
        db.session.execute(
            update(Order)
            .where(Order.id == order_id)
            .values(shipping_cents=cents, shipping_rate_name=name, total_cents=Order.total_cents + cents)
        )
        db.session.commit()


def charged(app, order_id: int) -> tuple:
    with app.app_context():
        order = db.session.get(Order, order_id)
        found = (
            order.payment_status,
            order.charged_subtotal_cents,
            order.charged_discount_cents,
            order.charged_shipping_cents,
            order.charged_tax_cents,
            order.charged_total_cents,
        )
        db.session.rollback()
        return found


def test_a_paid_session_records_its_breakdown_and_every_page_and_the_mail_show_it(
    app, client, pending_order, tokens, make_user
):
    order_id, _ = pending_order()
    ask_shipping(app, order_id, 490)
    assert post_event(client, completed(order_id, **BREAKDOWN)).json == {"status": "processed"}
    assert charged(app, order_id) == ("paid", 1000, 200, 490, 171, 1461)

    rows = ["Subtotal", "€10.00", "Discount", "-€2.00", "Shipping (Colissimo)", "€4.90", "Tax", "€1.71", "€14.61"]
    client.set_cookie("__session", tokens.mint("user_payer"))
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    shown = page[page.index('data-testid="charged"') :]
    assert all(row in shown for row in rows), shown
    assert "Refunded so far" not in shown

    with app.app_context():
        body = db.session.scalar(select(OutboxMail.body).where(OutboxMail.order_id == order_id))
    for line in ("Subtotal: €10.00", "Discount: -€2.00", "Shipping (Colissimo): €4.90", "Tax: €1.71", "Total: €14.61"):
        assert line in body, body

    make_user("user_staff", email="staff@example.com", role=Role.ADMIN)
    client.set_cookie("__session", tokens.mint("user_staff"))
    admin_page = client.get(f"/admin/orders/{order_id}").get_data(as_text=True)
    shown = admin_page[admin_page.index('data-testid="charged"') :]
    assert all(row in shown for row in rows), shown


@pytest.mark.parametrize(
    "session_fields",
    [
        {"shipping_cost": {"amount_subtotal": 390, "amount_total": 390}},  # a cheaper rate than the order's
        {"total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}},  # none at all
        {"shipping_cost": {"amount_subtotal": "490"}},  # not an amount
    ],
)
def test_a_session_whose_shipping_differs_from_the_orders_pays_nothing(app, client, pending_order, session_fields):
    order_id, _ = pending_order()
    ask_shipping(app, order_id, 490)
    response = post_event(client, completed(order_id, amount_total=1490, **session_fields))
    assert (response.status_code, response.json) == (200, {"status": "refused"})
    assert charged(app, order_id) == ("pending", None, None, None, None, None)
    with app.app_context():
        warning = db.session.get(Order, order_id).payment_warning
    assert "for shipping but order" in warning and "€4.90" in warning


@pytest.mark.parametrize(
    "session_fields",
    [
        {},  # the shape before total_details
        {"total_details": None},
        {"total_details": {"amount_discount": "2.00", "amount_tax": True}},  # not amounts: unknown
    ],
)
def test_an_older_session_shape_records_nulls_and_pages_still_render(
    app, client, pending_order, tokens, session_fields
):
    order_id, _ = pending_order()
    assert post_event(client, completed(order_id, **session_fields)).json == {"status": "processed"}
    assert charged(app, order_id) == ("paid", 1000, None, None, None, 1000)
    client.set_cookie("__session", tokens.mint("user_payer"))
    response = client.get(f"/orders/{order_id}")
    assert response.status_code == 200
    shown = response.get_data(as_text=True)
    assert "Subtotal" in shown and "Shipping" not in shown[shown.index('data-testid="charged"') :]
