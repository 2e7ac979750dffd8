"""Shipping rates: the ways to ship that staff offer, what each costs for an order, and the shopper's choice.

The shopper chooses a rate on the shop's own checkout page, before Stripe (not among Stripe Checkout's
`shipping_options`): the order, its stock, its e-mail and the staff's pages know the choice from the
start, and the money rule can check that Stripe charged the price of a rate this shop offered. Stripe is
then asked for that one rate (shop.payments.checkout.session_params).

A rate with `free_above_cents` costs nothing for an order whose lines total at least that much. Only
active rates in the order's currency are offered; checkout re-reads the rate in its transaction, so a
rate deactivated (or a rate id forged in the form) meanwhile is refused with a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from shop.extensions import db
from shop.store.models import ShippingRate
from shop.store.money import MAX_PRICE_CENTS, format_money

NOT_OFFERED = "That shipping rate is not offered for this order; choose one of the rates shown and try again."
CHOOSE_ONE = "Choose how your order is shipped."
MAX_NAME = 80  # shipping_rates.name
MAX_ESTIMATE = 80  # shipping_rates.delivery_estimate


class ShippingError(Exception):
    """The rate cannot be used or saved; the message is for the person who asked."""


@dataclass(frozen=True, slots=True)
class Offer:
    """A rate as one order would pay it."""

    rate_id: int
    name: str
    delivery_estimate: str | None
    price_cents: int  # for this order: 0 when it ships free
    currency: str
    free_above_cents: int | None

    @property
    def label(self) -> str:
        price = "free" if self.price_cents == 0 else format_money(self.price_cents, self.currency)
        return f"{self.name}: {price}"


def price_for(rate: ShippingRate, lines_total_cents: int) -> int:
    """What the rate costs an order whose lines total this much (free above its threshold, if set)."""
    if rate.free_above_cents is not None and lines_total_cents >= rate.free_above_cents:
        return 0
    return rate.price_cents


def _offer(rate: ShippingRate, lines_total_cents: int) -> Offer:
    return Offer(
        rate.id,
        rate.name,
        rate.delivery_estimate,
        price_for(rate, lines_total_cents),
        rate.currency,
        rate.free_above_cents,
    )


def offered(currency: str, lines_total_cents: int) -> list[Offer]:
    """The active rates in this currency, priced for this total, cheapest first."""
    rates = db.session.scalars(
        select(ShippingRate)
        .where(ShippingRate.active.is_(True), ShippingRate.currency == currency)
        .order_by(ShippingRate.price_cents, ShippingRate.id)
    ).all()
    return sorted((_offer(rate, lines_total_cents) for rate in rates), key=lambda o: (o.price_cents, o.rate_id))


def any_offered(currency: str) -> bool:
    """Whether an order in this currency must choose a rate (a shop without rates ships for nothing)."""
    statement = select(func.count()).where(ShippingRate.active.is_(True), ShippingRate.currency == currency)
    return bool(db.session.scalar(statement))


def choose(rate_id: int | None, currency: str, lines_total_cents: int) -> Offer | None:
    """The rate the shopper chose, priced for the order, in the caller's transaction; None when the shop
    offers no rate in this currency. Raises ShippingError (no choice, or one not offered)."""
    if rate_id is None:
        if any_offered(currency):
            raise ShippingError(CHOOSE_ONE)
        return None
    rate = db.session.get(ShippingRate, rate_id)
    if rate is None or not rate.active or rate.currency != currency:
        raise ShippingError(NOT_OFFERED)
    return _offer(rate, lines_total_cents)


# --- staff ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateFields:
    name: str
    price_cents: int
    currency: str
    delivery_estimate: str | None
    free_above_cents: int | None
    active: bool


def _check(fields: RateFields) -> None:
    if not fields.name or len(fields.name) > MAX_NAME:
        raise ShippingError(f"Give the rate a name of 1 to {MAX_NAME} characters.")
    if not 0 <= fields.price_cents <= MAX_PRICE_CENTS:
        raise ShippingError("Enter a price of 0 or more, such as 4.90.")
    if fields.free_above_cents is not None and not 0 <= fields.free_above_cents <= MAX_PRICE_CENTS:
        raise ShippingError("Enter an order total of 0 or more above which the rate is free, or leave it empty.")
    if fields.delivery_estimate is not None and len(fields.delivery_estimate) > MAX_ESTIMATE:
        raise ShippingError(f"The delivery estimate has at most {MAX_ESTIMATE} characters.")


def all_rates() -> list[ShippingRate]:
    return list(
        db.session.scalars(select(ShippingRate).order_by(ShippingRate.active.desc(), ShippingRate.price_cents)).all()
    )


def create(fields: RateFields) -> ShippingRate:
    """A new rate; commits. Raises ShippingError."""
    _check(fields)
    rate = ShippingRate(
        name=fields.name,
        price_cents=fields.price_cents,
        currency=fields.currency,
        delivery_estimate=fields.delivery_estimate,
        free_above_cents=fields.free_above_cents,
        active=fields.active,
    )
    db.session.add(rate)
    db.session.commit()
    return rate


def update(rate_id: int, fields: RateFields) -> ShippingRate:
    """Change a rate; commits. Orders placed with it keep the name and price they copied. Raises
    ShippingError (also when the rate is gone)."""
    _check(fields)
    rate = db.session.get(ShippingRate, rate_id, with_for_update=True)
    if rate is None:
        db.session.rollback()
        raise ShippingError("That shipping rate no longer exists; reload the list of rates.")
    rate.name = fields.name
    rate.price_cents = fields.price_cents
    rate.currency = fields.currency
    rate.delivery_estimate = fields.delivery_estimate
    rate.free_above_cents = fields.free_above_cents
    rate.active = fields.active
    db.session.commit()
    return rate
