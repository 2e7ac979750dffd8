"""The shopper's return from Stripe Checkout: one check with Stripe, then the order page."""

from __future__ import annotations

import logging

from flask import abort, flash, g, redirect, request, url_for

from shop.auth.decorators import login_required
from shop.payments import PaymentsUnavailable, bp, checkout
from shop.store import orders
from shop.store.models import OrderStatus, PaymentStatus

log = logging.getLogger(__name__)

MAX_SESSION_ID_LENGTH = 255  # checkout_sessions.id


@bp.get("/checkout/return/<id:order_id>")
@login_required
def checkout_return(order_id: int):
    """Says truthfully where the payment stands, having asked Stripe about the session the shopper comes
    back from (a failed bank debit included: never "confirming" for a payment that failed). Reloading it
    changes nothing: only the webhook or this check (the same idempotent functions) move the order."""
    order = orders.get_for_user(g.user.id, order_id)
    if order is None:
        abort(404)
    session_id = request.args.get("session_id", "")[:MAX_SESSION_ID_LENGTH] or None
    reached = True
    try:
        checkout.check(order, session_id)
    except PaymentsUnavailable:  # then the webhook will tell; the order page waits for it by itself
        reached = False
    order = orders.get_for_user(g.user.id, order_id)
    if order is None:  # gone since the first look: the same answer as an order that never was
        abort(404)
    page = url_for("store.order_page", order_id=order.id)
    if order.payment_status == PaymentStatus.PAID:
        flash(f"Payment received. Thank you! Order #{order.id} is confirmed.", "success")
    elif order.status == OrderStatus.CANCELLED and order.payment_status == PaymentStatus.FAILED:
        flash(
            f"The payment did not go through, so order #{order.id} was cancelled and nothing was charged; "
            "put its items back in your cart to try again.",
            "error",
        )
    elif order.payment_status == PaymentStatus.PENDING and order.payment_processing:
        flash("Your bank is confirming the payment; this page shows it as soon as it arrives.", "info")
    elif order.payment_status == PaymentStatus.PENDING and not reached:
        flash("We are confirming your payment with Stripe; this page shows it as soon as it arrives.", "info")
        page = url_for("store.order_page", order_id=order.id, confirming=1)
    elif order.payment_status == PaymentStatus.PENDING:
        flash("The payment was not completed and nothing was charged; press Pay now to finish it.", "info")
    return redirect(page)
