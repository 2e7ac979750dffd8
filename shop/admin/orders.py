"""Staff: every order, filtered by status, and moving an order along shop.store.lifecycle's table."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from shop import payments
from shop.admin import bp
from shop.admin.forms import OrderStatusForm
from shop.auth.decorators import admin_required
from shop.auth.redirects import safe_next
from shop.forms import first_error
from shop.inputs import one_page, submitted
from shop.store import orders
from shop.store.models import OrderStatus, PaymentStatus


@bp.get("/orders")
@admin_required
def orders_list():
    status = request.args.get("status") or None
    if status is not None and status not in {s.value for s in OrderStatus}:
        status = None
    page = one_page(lambda limit, offset: orders.list_all(status=status, limit=limit, offset=offset), orders.PER_PAGE)
    return render_template(
        "admin/orders.html",
        orders=page.items,
        has_next=page.has_next,
        page=page.number,
        status=status,
        counts=orders.count_by_status(),
        statuses=list(OrderStatus),
        next_statuses=orders.next_statuses,
    )


@bp.get("/orders/<id:order_id>")
@admin_required
def order_detail(order_id: int):
    order = orders.get(order_id)
    if order is None:
        abort(404)
    return render_template(
        "admin/order.html",
        order=order,
        next_statuses=orders.next_statuses(order.status),
        can_refund=order.status == OrderStatus.CANCELLED
        and (
            order.payment_status == PaymentStatus.PAID
            or (order.payment_status == PaymentStatus.REFUND_PENDING and not order.stripe_refund_id)
        ),
    )


@bp.post("/orders/<id:order_id>/status")
@admin_required
def order_move(order_id: int):
    form = OrderStatusForm()
    back = safe_next(form.next.data, url_for("admin.order_detail", order_id=order_id))
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(back)
    target = submitted(form.status.data)
    by = f"admin {g.user.clerk_id}"
    try:
        if target == OrderStatus.CANCELLED:  # settles the money at Stripe first: expire, or refund
            order = payments.checkout.cancel(order_id, by=by)
        else:
            order = orders.move(order_id, target, by=by)
    except orders.OrderNotFound:
        abort(404)
    except (orders.TransitionRefused, payments.PaymentsUnavailable) as exc:
        flash(str(exc), "error")
    else:
        refunding = order.payment_status in (PaymentStatus.REFUND_PENDING, PaymentStatus.REFUNDED)
        refund = " and its payment is being refunded" if refunding else ""
        flash(f"Order #{order_id} is now {target}{refund}.", "success")
    return redirect(back)


@bp.post("/orders/<id:order_id>/refund")
@admin_required
def order_refund(order_id: int):
    """A cancelled order whose payment arrived anyway (or came back from a failed refund): give the money
    back; or ask Stripe again for a refund it could not be asked for."""
    order = orders.get(order_id)
    if order is None:
        abort(404)
    try:
        if order.payment_status == PaymentStatus.REFUND_PENDING:
            payments.checkout.ask_refund(order_id)
        else:
            payments.checkout.cancel(order_id, by=f"admin {g.user.clerk_id}")
    except orders.OrderNotFound:
        abort(404)
    except (orders.TransitionRefused, payments.PaymentsUnavailable) as exc:
        flash(str(exc), "error")
    else:
        flash(f"The payment of order #{order_id} is being refunded.", "success")
    return redirect(url_for("admin.order_detail", order_id=order_id))
