"""Orders for the books: a CSV of every order placed in a date range, one row per order line.

The columns are one declarative list, `COLUMNS`: a header and how to read the value from the order (and
its line). Per line: what identifies the order (repeated, so a filtered or sorted sheet still says whose
line it is) and the line's own figures. The order's amounts (`order_amount`) are written on its first line
only, so that summing a column sums the orders, never an order once per line. A new figure of the order
(a discount, tax, shipping) is one more `order_amount(...)` line.

The file is what spreadsheets open as-is: UTF-8 with a byte order mark (without it Excel reads the bytes
as the local code page and breaks accents), comma-separated, CRLF rows, quoted where needed by the csv
module; amounts in the currency's units with a dot (12.50), dates and times in UTC, the shop's timezone.
A text cell starting with =, +, -, @, a tab or a carriage return is prefixed with ' (OWASP's advice
against CSV injection): a product named "=HYPERLINK(…)" stays text instead of becoming a formula.

It is produced as it is read: `order_lines_csv` yields the file row by row from a server-side cursor
(`yield_per`), so a year of orders never sits in memory. The admin's download and `flask orders export`
are both this function.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from shop.extensions import db
from shop.store.models import Order, OrderItem
from shop.store.money import cents_to_text

BOM = "\ufeff"
BATCH = 500  # rows fetched from the cursor at a time
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | None


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    value: Callable[[Order, OrderItem | None], Cell]
    first_line_only: bool = False  # the order's amounts: once per order, so column sums are right


def order_field(header: str, read: Callable[[Order], Cell]) -> Column:
    """Something about the order, on each of its lines."""
    return Column(header, lambda order, _line: read(order))


def line_field(header: str, read: Callable[[OrderItem], Cell]) -> Column:
    """Something about the line (blank on the row of an order without lines)."""
    return Column(header, lambda _order, line: None if line is None else read(line))


def order_amount(header: str, cents: Callable[[Order], int | None]) -> Column:
    """An amount of the order, in units (12.50), on its first line only; blank when the order has none."""
    return Column(header, lambda order, _line: _amount(cents(order)), first_line_only=True)


def _amount(cents: int | None) -> str | None:
    return None if cents is None else cents_to_text(cents)


def _placed(order: Order) -> str:
    return order.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


COLUMNS: tuple[Column, ...] = (
    order_field("Order", lambda order: order.id),
    order_field("Placed (UTC)", _placed),
    order_field("E-mail", lambda order: order.email),
    order_field("Ship to country", lambda order: order.ship_country),
    order_field("Order status", lambda order: order.status),
    order_field("Payment status", lambda order: order.payment_status),
    order_field("Currency", lambda order: order.currency),
    line_field("Product", lambda line: line.product_name),
    line_field("Quantity", lambda line: line.quantity),
    line_field("Unit price", lambda line: _amount(line.unit_price_cents)),
    line_field("Line total", lambda line: _amount(line.line_total_cents)),
    order_amount("Order total", lambda order: order.total_cents),
    order_amount("Subtotal charged", lambda order: order.charged_subtotal_cents),
    order_amount("Discount", lambda order: order.charged_discount_cents),
    order_amount("Shipping", lambda order: order.charged_shipping_cents),
    order_amount("Tax", lambda order: order.charged_tax_cents),
    order_amount("Charged", lambda order: order.charged_total_cents),
    # What Stripe confirmed refunded, partial or whole (charge.refunded's amount_refunded); a refund asked
    # and not yet confirmed is not counted.
    order_amount("Refunded", lambda order: order.refunded_cents),
)


class ExportError(ValueError):
    """A range that cannot be exported; the message is one sentence for the person who asked."""


def check_range(start: date, end: date) -> None:
    if start > end:
        raise ExportError(f"The range ends ({end.isoformat()}) before it starts ({start.isoformat()}): swap the dates.")


def file_name(start: date, end: date) -> str:
    return f"orders-{start.isoformat()}-to-{end.isoformat()}.csv"


def defused(value: Cell) -> str:
    """A cell as written: blank for None; text that a spreadsheet would run as a formula, prefixed with '."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    return str(value)


class _Echo:
    """A file whose write() hands back what it was given: csv.writer then returns each row as text."""

    def write(self, text: str) -> str:
        return text


def order_lines_csv(start: date, end: date, *, columns: tuple[Column, ...] = COLUMNS) -> Iterator[str]:
    """The CSV of orders placed from `start` to `end` (whole days, both included, UTC), oldest first: the
    byte order mark, the header, then one row per order line. Raises ExportError at once for a range that
    runs backwards; then yields as it reads. Needs an app context for as long as it is iterated."""
    check_range(start, end)
    return _rows(start, end, columns)


def _rows(start: date, end: date, columns: tuple[Column, ...]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield BOM + writer.writerow([column.header for column in columns])
    placed = Order.created_at >= datetime.combine(start, time.min, tzinfo=UTC)
    statement = select(Order, OrderItem).outerjoin(OrderItem, OrderItem.order_id == Order.id).where(placed)
    if end < date.max:  # the last day ends at midnight after it (9999-12-31 has no day after it)
        statement = statement.where(Order.created_at < datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC))
    statement = statement.order_by(Order.created_at, Order.id, OrderItem.id).execution_options(yield_per=BATCH)
    previous = None
    for order, line in db.session.execute(statement):
        first = order.id != previous
        previous = order.id
        yield writer.writerow(
            [defused(column.value(order, line)) if first or not column.first_line_only else "" for column in columns]
        )
