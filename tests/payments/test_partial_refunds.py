"""Partial refunds (issue 22 item 5): staff refund chosen units or an amount from the admin's order page,
through the `stripe` library against the local stand-in and its signed events; never more than is left
(two staff at once: one wins); stock back only when ticked; Stripe's partial `charge.refunded` recorded
(replays and reordered events keep the larger amount); a full refund cancels; refund.failed still works.
A line's worth is its share of what was charged (discount and tax pro-rated), checked by property."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from shop import payments
from shop.extensions import db
from shop.models import Role
from shop.store import refunds
from shop.store.models import Order, OrderItem, Refund
from tests.payments.support import charge, checkout_session, post_event, refund, stripe_event
from tests.payments.test_money import in_threads
from tests.store.conftest import checkout_fields, csrf_token_from, latest_order_id, on_standin_page
from tests.support import wait_for


def order_of(app, order_id: int) -> Order:
    with app.app_context():
        order = db.session.get(Order, order_id)
        db.session.expunge(order)
        return order


@pytest.fixture
def paid_on_standin(app, client, sign_in, make_product, stripe_standin, tokens, make_user):
    """A shopper's order of 2 mugs (€14.50) and a pen (€3.99) paid on the stand-in, its event delivered;
    the client then signed in as staff. Returns (order id, {name: order item id}, {name: product id})."""
    products = {"Mug": make_product("mug", stock=5, price_cents=1450, name="Mug")}
    products["Pen"] = make_product("pen", stock=5, price_cents=399, name="Pen")
    sign_in("user_refunded", email="refunded@example.com")
    for slug, quantity in (("mug", "2"), ("pen", "1")):
        client.post("/cart/add", data={"csrf_token": csrf_token_from(client), "slug": slug, "quantity": quantity})
    response = client.post("/checkout", data=checkout_fields(client))
    assert response.status_code == 303
    order_id = latest_order_id(app, "user_refunded")
    on_standin_page(client, response.headers["Location"], "pay")
    wait_for(lambda: order_of(app, order_id).payment_status == "paid", what="the payment's event")
    with app.app_context():
        items = {item.product_name: item.id for item in db.session.scalars(select(OrderItem))}
    make_user("user_staff", email="staff@example.com", role=Role.ADMIN)
    client.set_cookie("__session", tokens.mint("user_staff"))
    return order_id, items, products


def refund_form(client, order_id: int, **fields):
    token = csrf_token_from(client, f"/admin/orders/{order_id}")
    return client.post(f"/admin/orders/{order_id}/refund-part", data={"csrf_token": token, **fields})


def answer(client, order_id: int, **fields) -> str:
    """Post the refund form and read the page it leads back to (with its flashed sentence)."""
    assert refund_form(client, order_id, **fields).status_code == 302
    return flashed(client, order_id)


def flashed(client, order_id: int) -> str:
    return client.get(f"/admin/orders/{order_id}").get_data(as_text=True)


def test_lines_refunded_one_by_one_add_up_to_what_was_charged_and_the_last_cancels(
    app, client, paid_on_standin, stock_of
):
    order_id, items, products = paid_on_standin
    mug, pen = items["Mug"], items["Pen"]

    # One mug, its stock put back: €14.50, recorded once Stripe's partial charge.refunded arrives.
    assert refund_form(client, order_id, **{f"qty-{mug}": "1", "restock": "y"}).status_code == 302
    wait_for(lambda: order_of(app, order_id).refunded_cents == 1450, what="the partial charge.refunded")
    assert stock_of(products["Mug"]) == 4 and order_of(app, order_id).payment_status == "paid"
    page = flashed(client, order_id)
    assert "Refunded so far" in page and "€18.49" in page  # left to refund: 32.99 - 14.50

    # More than is left of a line, or a bad number: one sentence each, nothing refunded.
    assert "1 of 2 can still be refunded" in answer(client, order_id, **{f"qty-{mug}": "2"})
    assert "whole numbers" in answer(client, order_id, **{f"qty-{mug}": "-1"})
    assert "Only €18.49 of order" in answer(client, order_id, amount="18.50")
    assert "not both" in answer(client, order_id, amount="1.00", **{f"qty-{pen}": "1"})
    with app.app_context():
        assert len(db.session.scalars(select(Refund.id)).all()) == 1

    # The pen, stock not ticked: stays off the shelf.
    refund_form(client, order_id, **{f"qty-{pen}": "1"})
    wait_for(lambda: order_of(app, order_id).refunded_cents == 1849, what="the second charge.refunded")
    assert stock_of(products["Pen"]) == 4

    # The last mug refunds the rest exactly: Stripe's charge is then whole refunded, and the unshipped
    # order is cancelled as a full refund always did; its stock goes back, the mug put back before not twice.
    refund_form(client, order_id, **{f"qty-{mug}": "1"})
    wait_for(lambda: order_of(app, order_id).payment_status == "refunded", what="the full charge.refunded")
    order = order_of(app, order_id)
    assert (order.status, order.refunded_cents, order.charged_total_cents) == ("cancelled", 3299, 3299)
    assert (stock_of(products["Mug"]), stock_of(products["Pen"])) == (5, 5)
    with app.app_context():
        assert sorted(db.session.scalars(select(Refund.amount_cents))) == [399, 1450, 1450]
    assert 'data-testid="refund-part"' not in flashed(client, order_id)  # nothing left to refund


def test_two_staff_refunding_at_once_never_refund_more_than_is_left(app, paid_on_standin):
    order_id, _, _ = paid_on_standin
    ask = partial(payments.checkout.refund_part, order_id, amount=2000, restock=False, by="staff")
    results = in_threads(app, [ask, ask, ask])
    assert sum(isinstance(result, Refund) for result in results) == 1, results
    assert all(isinstance(r, Refund | refunds.RefundRefused) for r in results), results
    with app.app_context():
        assert list(db.session.scalars(select(Refund.amount_cents))) == [2000]
    wait_for(lambda: order_of(app, order_id).refunded_cents == 2000, what="the partial charge.refunded")


def test_a_partial_refund_stripe_could_not_be_asked_for_is_asked_again_by_the_sweep(app, paid_on_standin):
    order_id, _, _ = paid_on_standin
    reachable = app.config["STRIPE_API_BASE"]
    app.config["STRIPE_API_BASE"] = "http://127.0.0.1:9"  # nothing listens: Stripe cannot be reached
    app.extensions.pop("stripe_clients", None)
    with app.app_context(), pytest.raises(payments.PaymentsUnavailable):
        payments.checkout.refund_part(order_id, amount=500, restock=False, by="staff")
    with app.app_context():
        assert db.session.execute(select(Refund.status, Refund.stripe_refund_id)).all() == [("requested", None)]
        db.session.rollback()
        # Not yet due: a refund being asked right now is left to its asker.
        assert payments.checkout.sweep()["partial refunds asked"] == 0
    app.config["STRIPE_API_BASE"] = reachable
    app.extensions.pop("stripe_clients", None)
    with app.app_context():
        later = datetime.now(UTC) + payments.checkout.REFUND_RETRY_AFTER * 2
        assert payments.checkout.sweep(now=later)["partial refunds asked"] == 1
        assert db.session.scalar(select(Refund.stripe_refund_id)) is not None
        db.session.rollback()
        assert payments.checkout.sweep(now=later)["partial refunds asked"] == 0  # asked once: nothing left to ask
    wait_for(lambda: order_of(app, order_id).refunded_cents == 500, what="the partial charge.refunded")


def test_the_refund_form_needs_csrf_and_staff(app, client, paid_on_standin, tokens):
    order_id, items, _ = paid_on_standin
    data = {f"qty-{items['Pen']}": "1"}
    without_token = client.post(f"/admin/orders/{order_id}/refund-part", data=data)
    assert without_token.status_code == 400  # the CSRF check refuses it before the view
    client.set_cookie("__session", tokens.mint("user_refunded"))  # the shopper
    token = csrf_token_from(client)
    response = client.post(f"/admin/orders/{order_id}/refund-part", data={"csrf_token": token, **data})
    assert response.status_code == 403
    with app.app_context():
        assert db.session.scalar(select(Refund.id)) is None


# --- Stripe's events --------------------------------------------------------------------------------------


def paid(app, client, pending_order) -> int:
    order_id, _ = pending_order()
    session = checkout_session(order_id, f"cs_test_{order_id}")
    assert post_event(client, stripe_event("checkout.session.completed", session)).json == {"status": "processed"}
    return order_id


def test_partial_charge_refunded_is_recorded_and_replays_keep_the_larger_amount(app, client, pending_order):
    order_id = paid(app, client, pending_order)
    larger = stripe_event("charge.refunded", charge(order_id, refunded=False, amount_refunded=700))
    smaller = stripe_event(
        "charge.refunded", charge(order_id, refunded=False, amount_refunded=300), created=larger["created"] - 60
    )
    for event in (larger, smaller, larger):  # reordered, and replayed
        assert post_event(client, event).status_code == 200
    order = order_of(app, order_id)
    assert (order.status, order.payment_status, order.refunded_cents) == ("placed", "paid", 700)
    assert post_event(client, stripe_event("charge.refunded", charge(order_id))).status_code == 200
    order = order_of(app, order_id)
    assert (order.status, order.payment_status, order.refunded_cents) == ("cancelled", "refunded", 1000)


def test_refund_failed_takes_the_amount_back_off_and_marks_our_refund(app, client, pending_order):
    order_id = paid(app, client, pending_order)
    with app.app_context():
        db.session.add(Refund(order_id=order_id, key="part-refund-1", amount_cents=300, stripe_refund_id="re_p1"))
        db.session.commit()
    post_event(client, stripe_event("charge.refunded", charge(order_id, refunded=False, amount_refunded=300)))
    assert order_of(app, order_id).refunded_cents == 300
    failed = stripe_event("refund.failed", refund(order_id, id="re_p1", amount=300))
    assert post_event(client, failed).status_code == 200
    order = order_of(app, order_id)
    assert (order.payment_status, order.refunded_cents) == ("paid", 0)
    with app.app_context():
        assert db.session.scalar(select(Refund.status)) == "failed"
        assert refunds.refundable(db.session.get(Order, order_id)).left_cents == 1000


def test_a_refund_failed_that_overtakes_its_charge_refunded_leaves_the_order_paid(app, client, pending_order):
    """A cancel's whole refund fails at the bank; its charge.refunded, retried by Stripe, comes last."""
    order_id = paid(app, client, pending_order)
    made = 1_800_000_000
    failed = stripe_event(
        "refund.failed", refund(order_id, id="re_whole", amount=1000, created=made), created=made + 3600
    )
    late = stripe_event("charge.refunded", charge(order_id, refunded=True, amount_refunded=1000), created=made)
    for event in (failed, late):
        assert post_event(client, event).json == {"status": "processed"}
    order = order_of(app, order_id)
    assert (order.status, order.payment_status, order.refunded_cents, order.holds_stock) == ("placed", "paid", 0, True)
    # A later refund that Stripe makes counts: its total left the failed one out.
    again = stripe_event("charge.refunded", charge(order_id, refunded=True, amount_refunded=1000), created=made + 7200)
    assert post_event(client, again).json == {"status": "processed"}
    order = order_of(app, order_id)
    assert (order.status, order.payment_status, order.refunded_cents, order.holds_stock) == (
        "cancelled",
        "refunded",
        1000,
        False,
    )


@pytest.mark.parametrize(("second_refund", "expected"), [(1000, ("refunded", 1000)), (400, ("paid", 400))])
def test_a_failure_told_after_a_newer_total_leaves_the_order_as_that_total_says(
    app, client, pending_order, second_refund, expected, caplog
):
    """The whole charge refunded, that refund failed, then a second refund: its total comes before the
    first refund's failure. The order stands on the second total (refunded in full, or paid with 400 back)."""
    order_id = paid(app, client, pending_order)
    made = 1_800_000_000
    first = stripe_event("charge.refunded", charge(order_id, refunded=True, amount_refunded=1000), created=made)
    second = stripe_event(
        "charge.refunded",
        charge(order_id, refunded=second_refund == 1000, amount_refunded=second_refund),
        created=made + 20,
    )
    failed = stripe_event(
        "refund.failed", refund(order_id, id="re_first", amount=1000, created=made), created=made + 10
    )
    for event in (first, second, failed):
        assert post_event(client, event).json == {"status": "processed"}
    order = order_of(app, order_id)
    assert (order.payment_status, order.refunded_cents) == expected
    # Staff are told when the order is refunded no more (its refund.failed, older, says nothing when it comes).
    told = f"order {order_id}: Stripe now has €4.00 of it refunded, not all; refund the rest" in caplog.text
    assert told == (second_refund == 400)


@st.composite
def stripe_refund_histories(draw):
    """What Stripe does to a charge of 1000, one step every ten seconds: refunds created (never more than
    is left) and refunds failed. Each step is an event: (kind, amount, refund number, refund's created,
    event's created, the charge's amount_refunded after it). Returns the steps and the final total."""
    steps, made, failed, total = [], [], set(), 0
    for second in range(1_800_000_000, 1_800_000_000 + 10 * draw(st.integers(1, 6)), 10):
        live = [number for number in range(len(made)) if number not in failed]
        if live and draw(st.booleans()):
            number = draw(st.sampled_from(live))
            failed.add(number)
            total -= made[number][0]
            steps.append(("refund.failed", made[number][0], number, made[number][1], second, total))
        elif total < 1000:
            amount = draw(st.integers(1, 1000 - total))
            made.append((amount, second))
            total += amount
            steps.append(("charge.refunded", amount, len(made) - 1, second, second, total))
    return steps, total


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=stripe_refund_histories(), data=st.data())
def test_whatever_order_stripe_s_refund_events_come_in_the_order_ends_as_stripe_says(
    app, client, pending_order, history, data
):
    """Delivered in any order, some twice: the refunded amount is the charge's last amount_refunded, and the
    order is refunded exactly when that is the whole charge."""
    steps, total = history
    order_id = paid(app, client, pending_order)
    events = []
    for kind, amount, number, created, second, after in steps:
        if kind == "refund.failed":
            obj = refund(order_id, id=f"re_{order_id}_{number}", amount=amount, created=created)
        else:
            obj = charge(order_id, refunded=after == 1000, amount_refunded=after)
        events.append(stripe_event(kind, obj, created=second))
    delivery = data.draw(st.permutations(events))
    delivery += data.draw(st.lists(st.sampled_from(events), max_size=3))  # Stripe sends some again
    for event in delivery:
        assert post_event(client, event).status_code == 200
    order = order_of(app, order_id)
    assert order.refunded_cents == total
    assert order.payment_status == ("refunded" if total == 1000 else "paid")


# --- what a line is worth --------------------------------------------------------------------------------


def test_a_lines_worth_is_its_share_of_the_discount_and_tax(app, client, pending_order):
    """€10.00 of lines, €2.00 off, €1.60 tax on top, €4.90 shipping: the lines are worth €9.60 together."""
    order_id = paid(app, client, pending_order)
    with app.app_context():
        db.session.execute(
            update(Order)
            .where(Order.id == order_id)
            .values(
                charged_subtotal_cents=1000,
                charged_discount_cents=200,
                charged_tax_cents=160,
                charged_shipping_cents=490,
                charged_total_cents=1450,
            )
        )
        db.session.commit()
        state = refunds.refundable(db.session.get(Order, order_id))
        assert [line.share for line in state.lines] == [960]
        assert state.lines[0].value(1) == 960 and state.left_cents == 1450


amounts = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=8)


@given(amounts, st.integers(min_value=0, max_value=100), st.integers(min_value=0, max_value=100), st.data())
def test_line_shares_add_up_to_what_was_charged_minus_shipping(lines, discount_pct, tax_pct, data):
    subtotal = sum(lines)
    discount = subtotal * discount_pct // 100
    tax = (subtotal - discount) * tax_pct // 100  # on top (exclusive)
    pool = subtotal - discount + tax  # what was charged, minus shipping
    shares = refunds.line_shares(lines, pool)
    assert sum(shares) == pool
    for line, share in zip(lines, shares, strict=True):
        exact = line * pool / subtotal if subtotal else None
        assert share >= 0
        if exact is not None:
            assert share <= exact + 1  # within a cent of the line after its discount, plus its tax
    # Units refunded in any steps add up to the line's share.
    quantity = data.draw(st.integers(min_value=1, max_value=20))
    steps = data.draw(st.lists(st.integers(min_value=1, max_value=quantity), max_size=quantity))
    done, total = 0, 0
    for step in steps:
        step = min(step, quantity - done)
        total += refunds.units_value(shares[0], quantity, done, step)
        done += step
    total += refunds.units_value(shares[0], quantity, done, quantity - done)
    assert total == shares[0]
