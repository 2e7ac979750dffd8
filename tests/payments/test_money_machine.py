"""Shoppers, staff and Stripe in any order, duplicated and late, with the money's invariants checked
after every step (Hypothesis' RuleBasedStateMachine).

Stripe is tests/payments/recording_stripe.py: it answers the shop's calls and records every refund,
refunding whatever it is asked (so a double refund would show, where real Stripe would refuse it).
Its events are played by the machine itself, signed with the stripe library's scheme, and any event
sent once may be sent again at any later step.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select

from shop import payments
from shop.extensions import db
from shop.mail.models import OutboxMail
from shop.store import cart, checkout, orders
from shop.store.models import Order, OrderItem, Product
from tests.payments.conftest import ADDRESS
from tests.payments.recording_stripe import recording_stripe
from tests.payments.support import post_event, stripe_event

STOCK = 6
SHOPPERS = ("user_machine_a", "user_machine_b")


@pytest.fixture
def world(app, make_user, make_product, user_id):
    for clerk_id in SHOPPERS:
        make_user(clerk_id, email=f"{clerk_id}@example.com")
    products = [make_product(stock=STOCK, price_cents=price) for price in (700, 1250)]
    with recording_stripe(app) as stripe_api:
        yield app, [user_id(clerk_id) for clerk_id in SHOPPERS], products, stripe_api


def test_the_money_holds_whatever_happens(world):
    app, shoppers, products, stripe_api = world
    client = app.test_client()
    keys = itertools.count(1)

    class Money(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.orders: list[int] = []
            self.sent: list[dict] = []  # every event Stripe sent, for duplicates and late deliveries
            self.matched: set[int] = set()  # orders a matching completion was sent for

        @initialize()
        def fresh(self):
            with app.app_context():  # each run starts with full shelves and no orders
                db.session.execute(OrderItem.__table__.delete())
                db.session.execute(OutboxMail.__table__.delete())
                db.session.execute(Order.__table__.delete())
                db.session.execute(Product.__table__.update().values(stock=STOCK))
                db.session.commit()
            stripe_api.refunds.clear()

        # --- shoppers ------------------------------------------------------------------------------------

        @rule(
            shopper=st.sampled_from(range(len(SHOPPERS))), product=st.sampled_from([0, 1]), quantity=st.integers(1, 4)
        )
        def check_out(self, shopper, product, quantity):
            user, key = shoppers[shopper], f"machine-key-{next(keys):08d}"
            with app.test_request_context():
                payments.checkout.expire_earlier_checkouts(user, keep_key=key)
                try:
                    cart.add(user, product_id=products[product], quantity=quantity)
                    order = checkout.place_order(user, key, address=ADDRESS).order
                except (cart.CartError, checkout.CheckoutError):
                    db.session.rollback()
                    with app.app_context():
                        cart.remove(user, products[product])
                    return
                payments.checkout.start(order)
                self.orders.append(order.id)

        @precondition(lambda self: self.orders)
        @rule(data=st.data(), by_staff=st.booleans())
        def cancel(self, data, by_staff):
            order_id = data.draw(st.sampled_from(self.orders))
            with app.app_context():
                user = None if by_staff else db.session.get(Order, order_id).user_id
                try:
                    payments.checkout.cancel(order_id, by="machine", user_id=user)
                except (orders.TransitionRefused, payments.PaymentsUnavailable):
                    db.session.rollback()

        @precondition(lambda self: self.orders)
        @rule(data=st.data())
        def shopper_presses_pay_now(self, data):
            """A new attempt: the open session is expired (Stripe then sends its event, which must not fail
            the order) and a new one opens."""
            order_id = data.draw(st.sampled_from(self.orders))
            with app.test_request_context():
                order = db.session.get(Order, order_id, populate_existing=True)
                user, attempt, earlier = order.user_id, order.payment_attempts, order.stripe_checkout_session_id
                try:
                    payments.checkout.pay_now(order_id, user_id=user, attempt=attempt)
                except (payments.checkout.NothingToPay, payments.PaymentsUnavailable):
                    db.session.rollback()
            if earlier and stripe_api.sessions[earlier]["status"] == "expired":
                self.send("checkout.session.expired", dict(stripe_api.sessions[earlier]))

        # --- staff ---------------------------------------------------------------------------------------

        @precondition(lambda self: self.orders)
        @rule(data=st.data(), to=st.sampled_from(["shipped", "delivered"]))
        def staff_moves(self, data, to):
            with app.app_context():
                try:
                    orders.move(data.draw(st.sampled_from(self.orders)), to, by="machine staff")
                except orders.TransitionRefused:
                    db.session.rollback()

        @rule()
        def sweep(self):
            with app.app_context():
                payments.checkout.sweep()

        # --- Stripe --------------------------------------------------------------------------------------

        def send(self, kind: str, obj: dict) -> None:
            event = stripe_event(kind, obj)
            self.sent.append(event)
            assert post_event(client, event).status_code == 200

        def session_of(self, order_id: int) -> str:
            with app.app_context():
                return db.session.get(Order, order_id).stripe_checkout_session_id

        @precondition(lambda self: self.orders)
        @rule(data=st.data(), matching=st.booleans())
        def shopper_pays(self, data, matching):
            order_id = data.draw(st.sampled_from(self.orders))
            session = stripe_api.sessions[self.session_of(order_id)]
            if session["status"] != "open":
                return
            paid = stripe_api.complete(session["id"], amount_subtotal=None if matching else 1)
            if matching:
                self.matched.add(order_id)
            self.send("checkout.session.completed", paid)

        @precondition(lambda self: self.orders)
        @rule(data=st.data())
        def session_expires(self, data):
            expired = stripe_api.expire(self.session_of(data.draw(st.sampled_from(self.orders))))
            if expired is not None:
                self.send("checkout.session.expired", expired)

        @precondition(lambda self: stripe_api.refunds)
        @rule(data=st.data(), fails=st.booleans())
        def stripe_settles_a_refund(self, data, fails):
            refund = data.draw(st.sampled_from(stripe_api.refunds))
            if fails:
                self.send(
                    "refund.failed",
                    {"id": refund.id, "object": "refund", "payment_intent": refund.payment_intent, "status": "failed"},
                )
            else:
                charged = stripe_api.charged[refund.payment_intent]
                self.send(
                    "charge.refunded",
                    {
                        "id": f"ch_{refund.payment_intent}",
                        "object": "charge",
                        "amount": charged,
                        "amount_refunded": charged,
                        "payment_intent": refund.payment_intent,
                        "refunded": True,
                    },
                )

        @precondition(lambda self: self.sent)
        @rule(data=st.data())
        def stripe_sends_again(self, data):
            """A duplicate, or a late one: Stripe retries and does not promise the order of deliveries."""
            assert post_event(client, data.draw(st.sampled_from(self.sent))).status_code == 200

        # --- what must always hold ------------------------------------------------------------------------

        @invariant()
        def stock_is_conserved(self):
            with app.app_context():
                for product in products:
                    shelf = db.session.get(Product, product, populate_existing=True).stock
                    held = db.session.scalar(
                        select(func.coalesce(func.sum(OrderItem.quantity), 0))
                        .join(Order, Order.id == OrderItem.order_id)
                        .where(OrderItem.product_id == product, Order.holds_stock.is_(True))
                    )
                    assert shelf >= 0 and shelf + held == STOCK, (shelf, held)
                db.session.rollback()

        @invariant()
        def an_order_has_one_open_session_at_most(self):
            open_sessions: dict[str, int] = {}
            for session in stripe_api.sessions.values():
                if session["status"] == "open":
                    order_id = session["metadata"].get("order_id")
                    open_sessions[order_id] = open_sessions.get(order_id, 0) + 1
            assert all(count <= 1 for count in open_sessions.values()), open_sessions

        @invariant()
        def money_follows_the_rules(self):
            with app.app_context():
                for order in db.session.scalars(select(Order)).all():
                    intent = order.stripe_payment_intent_id
                    refunds = [refund for refund in stripe_api.refunds if refund.payment_intent == intent]
                    if order.payment_status in ("paid", "refund_pending", "refunded") and intent in stripe_api.charged:
                        # Paid only by a matching event (or confirmed refunded by Stripe, which charged it).
                        assert order.id in self.matched or order.payment_status == "refunded"
                    if order.status in ("shipped", "delivered"):
                        assert refunds == [], f"order {order.id} was shipped and refunded"
                    if intent:
                        assert stripe_api.refunded_of(intent) <= stripe_api.charged.get(intent, 0)
                    # Each refund the state machine decided reached Stripe at most once.
                    assert len(refunds) <= order.refund_requests
                    assert len({refund.idempotency_key for refund in refunds}) == len(refunds)
                    mails = db.session.scalars(select(OutboxMail.kind).where(OutboxMail.order_id == order.id)).all()
                    assert len(mails) == len(set(mails)), f"order {order.id} has an e-mail twice: {mails}"
                    assert ("order_shipped" in mails) == (order.status in ("shipped", "delivered"))
                db.session.rollback()

    Money.TestCase.settings = settings(
        max_examples=8,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    Money.TestCase().runTest()
