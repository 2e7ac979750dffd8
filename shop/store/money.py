"""Money is integer cents plus an ISO 4217 code: formatting for pages, parsing for the staff's forms."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
MAX_PRICE_CENTS = 100_000_000  # 1,000,000.00: anything above is a typo


def format_money(cents: int, currency: str) -> str:
    """1999, "EUR" → "€19.99"; an unknown code is written out: "19.99 CHF"."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    amount = f"{whole:,}.{part:02d}"
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


PRICE_TEXT = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")


def parse_price(text: str) -> int:
    """ "12.5" → 1250. Raises ValueError with a sentence for the form."""
    cleaned = text.strip().replace(",", ".")
    for symbol in SYMBOLS.values():
        cleaned = cleaned.removeprefix(symbol)
    # Plain ASCII digits only: Decimal also reads exponents ("1e-999999999"), "_" and other scripts' digits.
    if not PRICE_TEXT.fullmatch(cleaned):
        raise ValueError("Enter a price such as 12.50.")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("Enter a price such as 12.50.") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("Enter a price of 0 or more, such as 12.50.")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError("A price has at most two decimals.")
    if cents > MAX_PRICE_CENTS:
        raise ValueError("That price is too high for this shop.")
    return int(cents)


def cents_to_text(cents: int) -> str:
    """The inverse of parse_price, for a form's initial value: 1250 → "12.50"."""
    return f"{cents // 100}.{cents % 100:02d}"
