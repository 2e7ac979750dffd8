"""The orders export for the books: one CSV row per order line, the order's amounts on its first line only (so
column sums are the orders' sums), UTF-8 with a byte order mark, formula-like text defused, whole UTC days
both included; staff only; bad dates a one-sentence 400; the same file from `flask orders export`."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import update

from shop.extensions import db
from shop.models import Role
from shop.store import cart, checkout, exports
from shop.store.models import Order

EXPORT = "/admin/orders/export"
DECEMBER = {"from": "2026-12-01", "to": "2026-12-31"}


@pytest.fixture
def staff(app, sign_in):
    client = app.test_client()
    sign_in("user_admin", as_client=client, role=Role.ADMIN, email="admin@example.com")
    return client


@pytest.fixture
def orders(app, make_user, user_id, make_product):
    """Five orders, placed at the edges of December 2026 (UTC): {name: order id}."""
    make_product("creme", name="Café crème", price_cents=450, stock=100)
    make_product("formula", name='=HYPERLINK("http://evil.example","x")', price_cents=1000, stock=100)
    make_product("at", name="@SUM(1+1)", price_cents=250, stock=100)
    make_user("user_zoe", email="-zoé@example.com")
    shopper = user_id("user_zoe")
    placed_at = {
        "before": datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC),  # out
        "first": datetime(2026, 12, 1, 0, 0, tzinfo=UTC),  # in: the first instant of the first day
        "middle": datetime(2026, 12, 15, 12, 0, tzinfo=UTC),
        "last": datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # in: the last instant of the last day
        "after": datetime(2027, 1, 1, 0, 0, tzinfo=UTC),  # out
    }
    lines = {
        "before": [("creme", 1)],
        "first": [("creme", 2), ("formula", 1), ("at", 3)],
        "middle": [("creme", 1)],
        "last": [("formula", 2), ("at", 1)],
        "after": [("creme", 1)],
    }
    ids = {}
    with app.app_context():
        for name, when in placed_at.items():
            for slug, quantity in lines[name]:
                cart.add(shopper, slug=slug, quantity=quantity)
            order = checkout.place_order(shopper, f"export-key-{name:>8}".replace(" ", "x")).order
            paid = {"payment_status": "paid", "charged_total_cents": order.total_cents} if name != "last" else {}
            # Paid as placed: one shopper may leave only a few orders unpaid (checkout.MAX_UNPAID_ORDERS).
            db.session.execute(update(Order).where(Order.id == order.id).values(created_at=when, **paid))
            db.session.commit()
            ids[name] = order.id
        # The middle order was then cancelled and refunded in full; the last is still unpaid.
        db.session.execute(
            update(Order)
            .where(Order.id == ids["middle"])
            .values(
                status="cancelled",
                payment_status="refunded",
                charged_total_cents=450,
                charged_subtotal_cents=450,
                charged_shipping_cents=0,
                refunded_cents=450,  # as Stripe's charge.refunded recorded it
            )
        )
        db.session.commit()
    return ids


def parse(body: bytes) -> list[dict[str, str]]:
    assert body.startswith(b"\xef\xbb\xbf"), "no UTF-8 byte order mark: Excel would misread accents"
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def test_one_row_per_line_amounts_on_the_first_line_only(staff, orders):
    response = staff.get(EXPORT, query_string=DECEMBER)
    assert response.status_code == 200
    assert "Content-Length" not in response.headers  # yielded row by row, never built whole first
    assert response.mimetype == "text/csv" and response.mimetype_params["charset"] == "utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="orders-2026-12-01-to-2026-12-31.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_data()
    assert b"\r\n" in body  # RFC 4180 rows
    rows = parse(body)

    # The range: whole UTC days, both included; oldest first, lines in order.
    assert [int(row["Order"]) for row in rows] == [orders["first"]] * 3 + [orders["middle"]] + [orders["last"]] * 2
    assert [row["Placed (UTC)"] for row in (rows[0], rows[3], rows[4])] == [
        "2026-12-01 00:00:00",
        "2026-12-15 12:00:00",
        "2026-12-31 23:59:59",
    ]
    assert rows[0]["E-mail"] == "'-zoé@example.com"  # accents intact; a leading - defused
    assert rows[0]["Ship to country"] == "" and rows[0]["Currency"] == "EUR"
    assert [(row["Product"], row["Quantity"], row["Unit price"], row["Line total"]) for row in rows[:3]] == [
        ("Café crème", "2", "4.50", "9.00"),
        ('\'=HYPERLINK("http://evil.example","x")', "1", "10.00", "10.00"),  # stays text in a spreadsheet
        ("'@SUM(1+1)", "3", "2.50", "7.50"),
    ]
    # The order's amounts once, on its first line: every amount column sums to the orders' sums.
    # What Stripe charged, part by part (blank where a session did not say: the older shape, or unpaid).
    assert [(row["Subtotal charged"], row["Discount"], row["Shipping"], row["Tax"]) for row in rows[3:5]] == [
        ("4.50", "", "0.00", ""),
        ("", "", "", ""),
    ]
    assert [(row["Order total"], row["Charged"], row["Refunded"]) for row in rows] == [
        ("26.50", "26.50", "0.00"),
        ("", "", ""),
        ("", "", ""),
        ("4.50", "4.50", "4.50"),
        ("22.50", "", "0.00"),
        ("", "", ""),
    ]
    assert [(row["Order status"], row["Payment status"]) for row in (rows[0], rows[3], rows[4])] == [
        ("placed", "paid"),
        ("cancelled", "refunded"),
        ("placed", "pending"),
    ]

    def total(column: str) -> Decimal:
        return sum((Decimal(row[column]) for row in rows if row[column]), Decimal(0))

    assert total("Order total") == total("Line total") == Decimal("53.50")
    assert (total("Charged"), total("Refunded")) == (Decimal("31.00"), Decimal("4.50"))


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+2", "'=1+2"),
        ("+33 1 23 45 67 89", "'+33 1 23 45 67 89"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("a=1", "a=1"),
        ("Crème brûlée", "Crème brûlée"),
        (None, ""),
        (12, "12"),
    ],
)
def test_text_a_spreadsheet_would_run_is_defused(value, written):
    assert exports.defused(value) == written


def test_one_day_and_an_empty_range(staff, orders):
    first_day = parse(staff.get(EXPORT, query_string={"from": "2026-12-01", "to": "2026-12-01"}).get_data())
    assert {int(row["Order"]) for row in first_day} == {orders["first"]}
    before = parse(staff.get(EXPORT, query_string={"from": "2026-11-30", "to": "2026-11-30"}).get_data())
    assert {int(row["Order"]) for row in before} == {orders["before"]}
    nothing = staff.get(EXPORT, query_string={"from": "2025-01-01", "to": "2025-12-31"})
    assert nothing.status_code == 200 and parse(nothing.get_data()) == []  # the header alone
    everything = parse(staff.get(EXPORT, query_string={"from": "0001-01-01", "to": "9999-12-31"}).get_data())
    assert len({row["Order"] for row in everything}) == 5  # the ends of the calendar are no error


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ({"to": "2026-12-31"}, "From: a date such as 2026-12-01."),
        ({"from": "2026-12-01"}, "To: a date such as 2026-12-31."),
        ({"from": "2026-13-01", "to": "2026-12-31"}, "From: a date such as 2026-12-01."),
        ({"from": "2026-02-30", "to": "2026-12-31"}, "From: a date such as 2026-12-01."),
        ({"from": "20261201", "to": "2026-12-31"}, "From: a date such as 2026-12-01."),  # fromisoformat reads it
        ({"from": "2026-W49-1", "to": "2026-12-31"}, "From: a date such as 2026-12-01."),
        ({"from": "0000-01-01", "to": "2026-12-31"}, "From: a date such as 2026-12-01."),
        ({"from": "2026-12-01", "to": "2026-12-31\n"}, None),  # stripped: a valid date
        ({"from": "2026-12-01", "to": "99999-12-31"}, "To: a date such as 2026-12-31."),
        ({"from": "2026-12-01", "to": "٢٠٢٦-١٢-٣١"}, "To: a date such as 2026-12-31."),  # other scripts' digits
        ({"from": "2026-12-31", "to": "2026-12-01"}, "To: a date on or after the first day (2026-12-31)."),
    ],
)
def test_bad_dates_are_a_one_sentence_400_on_the_orders_page(staff, query, sentence):
    """Beside its field, on the orders page the form is on (each field wrong says its own sentence)."""
    response = staff.get(EXPORT, query_string=query)
    if sentence is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert f'<p class="field-error">{sentence}</p>' in html
    assert html.count('class="field-error"') == 1
    assert 'data-testid="export-form"' in html and "<h2>Orders</h2>" in html


def test_no_dates_at_all_say_both(staff):
    html = staff.get(EXPORT).get_data(as_text=True)
    assert "From: a date such as 2026-12-01." in html and "To: a date such as 2026-12-31." in html


def test_the_orders_page_offers_this_month(staff):
    page = staff.get("/admin/orders")
    assert "Content-Length" in page.headers  # a page built whole says its length: the export above does not
    html = page.get_data(as_text=True)
    today = datetime.now(UTC).date()
    assert 'action="/admin/orders/export"' in html and 'method="get"' in html
    assert f'type="date" value="{today.replace(day=1).isoformat()}"' in html
    assert f'type="date" value="{today.isoformat()}"' in html


def test_staff_only(app, client, sign_in, orders):
    assert client.get(EXPORT, query_string=DECEMBER).status_code in (302, 401)  # signed out: to the sign-in
    sign_in("user_shopper")
    response = client.get(EXPORT, query_string=DECEMBER)
    assert response.status_code == 403 and b"zo" not in response.get_data()


def test_the_command_writes_the_same_file(app, staff, runner, orders, tmp_path):
    downloaded = staff.get(EXPORT, query_string=DECEMBER).get_data()
    output = tmp_path / "december.csv"
    result = runner.invoke(
        args=["orders", "export", "--from", "2026-12-01", "--to", "2026-12-31", "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    assert output.read_bytes() == downloaded
    assert "6 order line(s) written to" in result.stderr

    to_stdout = runner.invoke(args=["orders", "export", "--from", "2026-12-01", "--to", "2026-12-31"])
    assert to_stdout.exit_code == 0 and to_stdout.stdout_bytes == downloaded

    backwards = runner.invoke(args=["orders", "export", "--from", "2026-12-31", "--to", "2026-12-01"])
    assert backwards.exit_code == 2
    assert "The range ends (2026-12-01) before it starts (2026-12-31): swap the dates." in backwards.output
    not_a_date = runner.invoke(args=["orders", "export", "--from", "2026-02-30", "--to", "2026-12-01"])
    assert not_a_date.exit_code == 2 and "'2026-02-30' does not match the format '%Y-%m-%d'" in not_a_date.output
