"""Order e-mails through the outbox, to a real SMTP server (aiosmtpd): sent once after commit, retried
after an outage, never for a rolled-back change; in development without SMTP, files linked from the admin."""

import socket
from email import message_from_bytes, policy

import flask_migrate
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, text

from shop.extensions import db
from shop.mail import transport
from shop.mail.models import OutboxMail
from shop.models import Role
from shop.store import order_mail
from tests.payments.support import checkout_session, post_event, stripe_event
from tests.payments.test_webhook import OrderFault
from tests.store.conftest import csrf_token_from
from tests.support import wait_for


class Inbox:
    """aiosmtpd's handler: keeps every message the server accepted."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    def __init__(self):
        self.port = free_port()
        self.inbox = Inbox()
        self.controller = None

    def start(self):
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp():
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def mail_app(make_app, smtp):
    return make_app(MAIL_URL=f"smtp://127.0.0.1:{smtp.port}?starttls=0", MAIL_FROM="Shop <orders@shop.test>")


@pytest.fixture
def paid_order(mail_app, make_user, make_product):
    """Pay a pending order through the signed webhook; returns its id."""
    from shop.store import cart, checkout
    from tests.payments.conftest import ADDRESS

    def pay(key: str = "mail-key-00000001") -> int:
        make_user("user_mailed", email="mailed@example.com")
        product = make_product(name="Blue Mug", price_cents=1450)
        with mail_app.app_context():
            user_id = db.session.scalar(select(db.text("id")).select_from(db.text("users")))
            cart.add(user_id, product_id=product, quantity=2)
            order_id = checkout.place_order(user_id, key, address=ADDRESS).order.id
        session = checkout_session(
            order_id, f"cs_test_{order_id}", order_key=key, amount_subtotal=2 * 1450, amount_total=2 * 1450
        )
        event = stripe_event("checkout.session.completed", session)
        assert post_event(mail_app.test_client(), event).json == {"status": "processed"}
        return order_id

    return pay


def outbox(app):
    with app.app_context():
        rows = db.session.execute(select(OutboxMail.kind, OutboxMail.status, OutboxMail.attempts)).all()
        db.session.rollback()
        return [tuple(row) for row in rows]


def test_the_confirmation_is_sent_once_after_commit(mail_app, smtp, paid_order):
    smtp.start()
    order_id = paid_order()
    wait_for(lambda: smtp.inbox.messages, what="the e-mail at the SMTP server")
    [(recipients, message)] = smtp.inbox.messages
    assert recipients == ["mailed@example.com"]
    assert message["Subject"] == f"Order #{order_id} confirmed: payment received"
    assert message["From"] == "Shop <orders@shop.test>"
    body = message.get_content()
    assert "2 × Blue Mug" in body and "€29.00" in body and "12 Rue de la Paix" in body and "75002 Paris" in body
    wait_for(lambda: outbox(mail_app) == [("order_confirmed", "sent", 1)], what="the row marked sent")
    assert (
        mail_app.test_cli_runner().invoke(args=["mail", "send-pending", "--now"]).output.strip() == "sent 0, failed 0"
    )
    assert len(smtp.inbox.messages) == 1


def test_an_smtp_outage_is_retried_and_nothing_is_lost_or_doubled(mail_app, smtp, paid_order):
    paid_order()  # the server is down: the in-process send fails
    wait_for(lambda: outbox(mail_app) == [("order_confirmed", "pending", 1)], what="the failed attempt recorded")
    runner = mail_app.test_cli_runner()
    still_down = runner.invoke(args=["mail", "send-pending", "--now"])
    assert still_down.exit_code == 1 and "ConnectionRefusedError" in still_down.output
    assert "mailed@example.com" not in still_down.output  # no address in errors
    assert runner.invoke(args=["mail", "send-pending"]).output.strip() == "sent 0, failed 0"  # not due yet
    smtp.start()
    assert runner.invoke(args=["mail", "send-pending", "--now"]).output.strip() == "sent 1, failed 0"
    assert runner.invoke(args=["mail", "send-pending", "--now"]).output.strip() == "sent 0, failed 0"
    assert len(smtp.inbox.messages) == 1
    assert outbox(mail_app) == [("order_confirmed", "sent", 3)]


def test_no_email_for_a_rolled_back_change(mail_app, smtp, make_user, make_product):
    from shop.store import cart, checkout
    from tests.payments.conftest import ADDRESS

    smtp.start()
    make_user("user_unlucky", email="unlucky@example.com")
    product = make_product()
    with mail_app.app_context():
        user_id = db.session.scalar(select(db.text("id")).select_from(db.text("users")))
        cart.add(user_id, product_id=product, quantity=1)
        order_id = checkout.place_order(user_id, "rolled-back-key-001", address=ADDRESS).order.id
    fault = OrderFault(mail_app)
    fault.arm()
    try:
        session = checkout_session(order_id, f"cs_test_{order_id}", order_key="rolled-back-key-001")
        event = stripe_event("checkout.session.completed", session)
        assert post_event(mail_app.test_client(), event).status_code == 500
    finally:
        fault.fix()
    assert outbox(mail_app) == []
    assert (
        mail_app.test_cli_runner().invoke(args=["mail", "send-pending", "--now"]).output.strip() == "sent 0, failed 0"
    )
    assert smtp.inbox.messages == []


def test_shipping_sends_the_shipped_email(mail_app, smtp, paid_order, sign_in):
    smtp.start()
    order_id = paid_order()
    staff = mail_app.test_client()
    sign_in("user_staff", as_client=staff, role=Role.ADMIN)
    detail = f"/admin/orders/{order_id}"
    staff.post(f"{detail}/status", data={"csrf_token": csrf_token_from(staff, detail), "status": "shipped"})
    wait_for(lambda: len(smtp.inbox.messages) == 2, what="the shipped e-mail")
    subjects = sorted(message["Subject"] for _, message in smtp.inbox.messages)
    assert subjects == [f"Order #{order_id} confirmed: payment received", f"Order #{order_id} shipped"]


def test_in_development_without_smtp_the_mailbox_is_files_linked_from_the_admin(
    make_app, make_user, make_product, sign_in, tmp_path
):
    from shop.store import cart, checkout
    from tests.payments.conftest import ADDRESS

    app = make_app(MAIL_DIR=str(tmp_path))
    make_user("user_dev", email="dev@example.com")
    product = make_product(name="Blue Mug")
    with app.app_context():
        user_id = db.session.scalar(select(db.text("id")).select_from(db.text("users")))
        cart.add(user_id, product_id=product, quantity=1)
        order_id = checkout.place_order(user_id, "dev-mailbox-key-01", address=ADDRESS).order.id
    session = checkout_session(order_id, f"cs_test_{order_id}", order_key="dev-mailbox-key-01")
    post_event(app.test_client(), stripe_event("checkout.session.completed", session))
    [written] = wait_for(lambda: list(tmp_path.glob("*.eml")), what="the file in the development mailbox")
    assert "Blue Mug" in written.read_text()
    staff = app.test_client()
    sign_in("user_staff", as_client=staff, role=Role.ADMIN)
    listing = staff.get("/admin/mail").get_data(as_text=True)
    assert f"Order #{order_id} confirmed" in listing and "instance/mail/" in listing
    with app.app_context():
        mail_id = db.session.scalar(select(OutboxMail.id))
    detail = staff.get(f"/admin/mail/{mail_id}").get_data(as_text=True)
    assert written.name in detail and "Blue Mug" in detail and "Message-ID" in detail


def test_the_migration_names_the_mails_written_before_it_and_keeps_their_message_id(mail_app, paid_order):
    """0007 on rows written under 0006's one mail per (order, kind): an order's mail gets the key the store
    gives it now, so it is not written twice and its Message-ID stays; a mail whose order went is named by
    its own id."""
    order_id = paid_order()  # the server is down: the confirmation stays pending
    wait_for(lambda: outbox(mail_app) == [("order_confirmed", "pending", 1)], what="the failed attempt recorded")
    with mail_app.app_context():
        db.engine.dispose()
        flask_migrate.downgrade(revision="0006_money")
        try:
            with db.engine.begin() as conn:
                orphan = conn.scalar(
                    text(
                        "INSERT INTO mail_outbox (order_id, kind, to_address, subject, body) "
                        "VALUES (NULL, 'order_shipped', 'gone@example.com', 'Order #9 shipped', '…') RETURNING id"
                    )
                )
        finally:
            db.engine.dispose()
            flask_migrate.upgrade()
        keys = dict(db.session.execute(select(OutboxMail.id, OutboxMail.dedup_key)).tuples().all())
        mail = db.session.scalar(select(OutboxMail).where(OutboxMail.order_id == order_id))
        assert keys == {mail.id: f"order-{order_id}.order_confirmed", orphan: f"mail-{orphan}.order_shipped"}
        message = transport.build_message(mail, "Shop <orders@shop.test>")
        assert message["Message-ID"] == f"<mail-{mail.id}.order-{order_id}.order_confirmed@shop.invalid>"  # as in 0006
        assert order_mail.enqueue(db.session, order_id, order_mail.ORDER_CONFIRMED) is False  # the same mail
        db.session.rollback()
    assert len(outbox(mail_app)) == 2
