"""Low-stock alerts: one e-mail to each admin, through the outbox, each time a product's stock falls from above
its threshold to at or below it (a checkout, a stock edit); none above it, none again until a restock re-arms
it; two checkouts taking the last units at once send one; the dashboard lists what is low."""

from __future__ import annotations

import threading
from email import message_from_bytes, policy

import psycopg
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from shop.extensions import db
from shop.mail.models import OutboxMail
from shop.models import Role, User
from shop.store import cart, checkout, stock_alerts
from shop.store.models import Product
from tests.store.conftest import csrf_token_from
from tests.support import wait_for


@pytest.fixture
def mail_app(make_app, tmp_path):
    """The development mailbox in a folder of this test's own: what the kick after commit sent is there."""
    return make_app(MAIL_DIR=str(tmp_path), SHOP_URL="https://shop.example.com")


@pytest.fixture
def staff(mail_app, sign_in, make_user):
    """Two admins (each told), a shopper and a deleted admin (neither told); the first admin's client."""
    client = mail_app.test_client()
    sign_in("user_ada", as_client=client, role=Role.ADMIN, email="ada@example.com", first_name="Ada")
    make_user("user_bob", role=Role.ADMIN, email="bob@example.com", first_name="Bob")
    make_user("user_cy", email="cy@example.com")
    make_user("user_gone", role=Role.ADMIN, email="gone@example.com")
    with mail_app.app_context():
        db.session.execute(update(User).where(User.clerk_id == "user_gone").values(deleted_at=db.func.now()))
        db.session.commit()
    return client


@pytest.fixture
def buy(mail_app, make_user, user_id):
    """Place an order of `quantity` of a product, as a new shopper, through the checkout service."""
    shoppers = iter(range(1, 1000))

    def place(slug: str, quantity: int) -> int:
        clerk_id = f"user_buyer_{next(shoppers)}"
        make_user(clerk_id)
        with mail_app.app_context():
            cart.add(user_id(clerk_id), slug=slug, quantity=quantity)
            return checkout.place_order(user_id(clerk_id), f"alert-key-{clerk_id}").order.id

    return place


def alerts(app) -> list[tuple[str, str, str, str]]:
    """The low-stock mails in the outbox: (key, recipient, subject, status), by key."""
    with app.app_context():
        rows = db.session.execute(
            select(OutboxMail.dedup_key, OutboxMail.to_address, OutboxMail.subject, OutboxMail.status)
            .where(OutboxMail.kind == "stock_low")
            .order_by(OutboxMail.dedup_key)
        ).all()
        db.session.rollback()
        return [tuple(row) for row in rows]


def product_row(app, product_id: int) -> tuple[int, int, int]:
    with app.app_context():
        row = db.session.execute(
            select(Product.stock, Product.low_stock_threshold, Product.low_stock_alerts).where(Product.id == product_id)
        ).one()
        db.session.rollback()
        return tuple(row)


def test_a_checkout_falling_through_the_threshold_mails_each_admin_once(mail_app, staff, make_product, buy, tmp_path):
    mug = make_product("mug", stock=10, name="Mug — grès", low_stock_threshold=3)
    buy("mug", 6)  # 10 → 4: still above
    assert alerts(mail_app) == []
    buy("mug", 1)  # 4 → 3: at the threshold, a crossing
    keys = [f"product-{mug}.stock_low-1.user-{n}" for n in (1, 2)]  # Ada and Bob, the live admins, by id
    assert [(key, to) for key, to, _, _ in alerts(mail_app)] == [
        (keys[0], "ada@example.com"),
        (keys[1], "bob@example.com"),
    ]
    assert {subject for _, _, subject, _ in alerts(mail_app)} == {"Low stock: Mug — grès (3 left)"}
    # Sent by the kick after the checkout's commit, not left for cron.
    wait_for(lambda: {status for *_, status in alerts(mail_app)} == {"sent"}, what="the alerts sent after commit")
    sent = sorted(tmp_path.glob("*-stock_low.eml"))
    body = message_from_bytes(sent[0].read_bytes(), policy=policy.default).get_content()
    assert "Hello Ada," in body and "Mug — grès is running low: 3 left" in body and "threshold of 3" in body
    assert f"https://shop.example.com/admin/products/{mug}" in body

    buy("mug", 1)  # 3 → 2: already low, no new crossing
    buy("mug", 2)  # 2 → 0: sold out, still the same crossing
    assert len(alerts(mail_app)) == 2
    assert product_row(mail_app, mug) == (0, 3, 1)


def test_a_restock_rearms_the_alert_and_stock_edits_count_too(mail_app, staff, make_product, buy):
    mug = make_product("mug", stock=4, name="Mug", low_stock_threshold=3)
    buy("mug", 1)  # 4 → 3: crossing 1
    assert {key.split(".")[1] for key, *_ in alerts(mail_app)} == {"stock_low-1"}

    # The product list's stock box: a restock above the threshold sends nothing, and re-arms it.
    token = csrf_token_from(staff, "/admin/products")
    staff.post(f"/admin/products/{mug}/stock", data={"csrf_token": token, "stock": "12", "seen_stock": "3"})
    assert product_row(mail_app, mug) == (12, 3, 1)
    assert len(alerts(mail_app)) == 2
    buy("mug", 9)  # 12 → 3: crossing 2
    assert {key.split(".")[1] for key, *_ in alerts(mail_app)} == {"stock_low-1", "stock_low-2"}

    # A stock edit down through the threshold is a crossing too; the threshold is set on the product's form.
    staff.post(f"/admin/products/{mug}/stock", data={"csrf_token": token, "stock": "9", "seen_stock": "3"})
    form = staff.get(f"/admin/products/{mug}").get_data(as_text=True)
    assert 'name="low_stock_threshold"' in form and 'value="3"' in form
    edit = {
        "csrf_token": token,
        "name": "Mug",
        "slug": "mug",
        "price": "10.00",
        "currency": "EUR",
        "stock": "5",
        "seen_stock": "9",
        "low_stock_threshold": "5",
        "active": "y",
    }
    saved = staff.post(f"/admin/products/{mug}", data=edit, follow_redirects=True)
    assert "Mug is saved." in saved.get_data(as_text=True)
    assert product_row(mail_app, mug) == (5, 5, 3)  # 9 → 5 with the new threshold 5: crossing 3
    assert len(alerts(mail_app)) == 6

    # Raising the threshold over the stock alone is no fall of the stock: the dashboard shows it, no mail.
    refused = staff.post(f"/admin/products/{mug}", data={**edit, "seen_stock": "5", "low_stock_threshold": "-1"})
    assert "Low-stock alert: a whole number from 0 to 1,000,000." in refused.get_data(as_text=True)
    staff.post(f"/admin/products/{mug}", data={**edit, "seen_stock": "5", "low_stock_threshold": "8"})
    assert product_row(mail_app, mug) == (5, 8, 3)
    assert len(alerts(mail_app)) == 6


def test_the_dashboard_lists_active_products_at_or_below_their_threshold(mail_app, staff, make_product):
    make_product("plenty", stock=50, name="Plenty")
    make_product("at-it", stock=3, name="At its threshold")
    make_product("out", stock=0, name="Sold out")
    make_product("own", stock=8, name="Own threshold", low_stock_threshold=10)
    make_product("hidden", stock=0, name="Hidden", active=False)
    html = staff.get("/admin/").get_data(as_text=True)
    section = html[html.index('data-testid="low-stock"') :]
    assert section.index("Sold out") < section.index("At its threshold") < section.index("Own threshold")
    assert "Plenty" not in section and "Hidden" not in section
    assert "more products are low" not in section

    with mail_app.app_context():  # past the list's bound, the emptiest are shown and the rest announced
        assert [product.name for product in stock_alerts.low_stock(limit=2)[0]] == ["Sold out", "At its threshold"]
        assert stock_alerts.low_stock(limit=2)[1] is True and stock_alerts.low_stock(limit=3)[1] is False


def test_a_rolled_back_checkout_sends_nothing(mail_app, staff, make_product, make_user, user_id):
    """The alert is written in the checkout's transaction: a checkout refused after the stock was taken
    (a cart mixing currencies) leaves neither the crossing nor its mail."""
    mug = make_product("mug", stock=4, name="Mug", low_stock_threshold=3)
    make_product("dollar-cup", stock=10, currency="USD")
    make_user("user_mixed")
    with mail_app.app_context():
        cart.add(user_id("user_mixed"), slug="mug", quantity=1)
        cart.add(user_id("user_mixed"), slug="dollar-cup", quantity=1)
        with pytest.raises(checkout.CheckoutError, match="mixes currencies"):
            checkout.place_order(user_id("user_mixed"), "alert-key-mixed-currencies")
    assert product_row(mail_app, mug) == (4, 3, 0)
    assert alerts(mail_app) == []


def test_two_checkouts_taking_the_last_units_at_once_send_one_alert(
    mail_app, staff, make_product, make_user, user_id, database_url
):
    """Both checkouts are held on the product's row lock, then let go together: each sees the other's take
    (PostgreSQL re-reads the row after the lock), so exactly one of them falls through the threshold."""
    mug = make_product("mug", stock=4, name="Mug", low_stock_threshold=2)
    buyers = []
    for n in range(2):
        make_user(f"user_racer_{n}")
        buyers.append(user_id(f"user_racer_{n}"))
        with mail_app.app_context():
            cart.add(buyers[-1], slug="mug", quantity=2)
    placed: list[int] = []
    failed: list[BaseException] = []

    def place(buyer: int) -> None:
        with mail_app.app_context():
            try:
                placed.append(checkout.place_order(buyer, f"alert-race-key-{buyer:08d}").order.id)
            except BaseException as exc:
                failed.append(exc)
            finally:
                db.session.remove()

    libpq = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    with psycopg.connect(libpq) as holder, psycopg.connect(libpq, autocommit=True) as watcher:
        holder.execute("SELECT 1 FROM products WHERE id = %s FOR UPDATE", (mug,))
        threads = [threading.Thread(target=place, args=(buyer,)) for buyer in buyers]
        for thread in threads:
            thread.start()
        wait_for(lambda: watcher.execute(waiting).fetchone()[0] >= 2, what="both checkouts waiting on the row")
        holder.commit()  # both go, one after the other on the row's lock
        for thread in threads:
            thread.join(timeout=30)
    assert not failed and len(placed) == 2
    assert product_row(mail_app, mug) == (0, 2, 1)
    assert [key for key, *_ in alerts(mail_app)] == [f"product-{mug}.stock_low-1.user-{n}" for n in (1, 2)]
