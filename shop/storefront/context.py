"""What every template gets from the store: the header's cart count, money and image helpers."""

from __future__ import annotations

import logging
from typing import Any

from flask import g
from sqlalchemy.exc import SQLAlchemyError

from shop.store.money import format_money
from shop.storefront import bp

log = logging.getLogger(__name__)


def cart_count() -> int | None:
    """The signed-in shopper's number of items, once per request (None when signed out)."""
    if g.get("user") is None:
        return None
    if "cart_count" not in g:
        from shop.store import cart

        try:
            g.cart_count = cart.count(g.user.id)
        except SQLAlchemyError:  # the header must not turn a page (or an error page) into a 500
            log.warning("cart count unavailable", exc_info=True)
            g.cart_count = None
    return g.cart_count


@bp.app_context_processor
def store_context() -> dict[str, Any]:
    return {"cart_count": cart_count}


@bp.app_template_filter("money")
def money_filter(cents: int, currency: str = "EUR") -> str:
    return format_money(cents, currency)
