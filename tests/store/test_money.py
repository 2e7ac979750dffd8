"""Money: integer cents plus a currency code, formatted for pages and parsed from the staff's forms."""

import pytest

from shop.store.money import cents_to_text, format_money, parse_price


@pytest.mark.parametrize(
    ("cents", "currency", "shown"),
    [(1999, "EUR", "€19.99"), (5, "USD", "$0.05"), (123456789, "GBP", "£1,234,567.89"), (1000, "CHF", "10.00 CHF")],
)
def test_format(cents, currency, shown):
    assert format_money(cents, currency) == shown


@pytest.mark.parametrize(("typed", "cents"), [("12.5", 1250), ("12,50", 1250), ("€3", 300), (" 0.01 ", 1), ("0", 0)])
def test_parse(typed, cents):
    assert parse_price(typed) == cents
    assert parse_price(cents_to_text(cents)) == cents


@pytest.mark.parametrize("typed", ["", "abc", "-1", "1.234", "NaN", "Infinity", "99999999999"])
def test_parse_refuses(typed):
    with pytest.raises(ValueError):
        parse_price(typed)
