"""The shopper's return from Stripe Checkout: one check with Stripe, then the order page."""

from __future__ import annotations

import contextlib
import logging

from flask import abort, flash, g, redirect, url_for

from shop.auth.decorators import login_required
from shop.payments import PaymentsUnavailable, bp, checkout
from shop.store import orders
from shop.store.models import PaymentStatus

log = logging.getLogger(__name__)


@bp.get("/checkout/return/<id:order_id>")
@login_required
def checkout_return(order_id: int):
    """Says truthfully where the payment stands. Reloading it changes nothing: only the webhook or
    this check (the same idempotent functions) move the order."""
    order = orders.get_for_user(g.user.id, order_id)
    if order is None:
        abort(404)
    with contextlib.suppress(PaymentsUnavailable):  # then the webhook will tell; the page says "confirming"
        checkout.check(order)
    order = orders.get_for_user(g.user.id, order_id)
    if order is None:  # gone since the first look: the same answer as an order that never was
        abort(404)
    if order.payment_status == PaymentStatus.PAID:
        flash(f"Payment received. Thank you! Order #{order.id} is confirmed.", "success")
    elif order.payment_status == PaymentStatus.PENDING:
        flash("We are confirming your payment with Stripe; this page will show it once it arrives.", "info")
    elif order.payment_status == PaymentStatus.FAILED:
        flash("The payment did not go through, so the order was cancelled and nothing was charged.", "error")
    return redirect(url_for("store.order_page", order_id=order.id))
