"""Staff: every order, filtered by status, and moving an order along shop.store.lifecycle's table; the
orders of a date range as CSV (shop.store.exports)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Response, abort, flash, g, redirect, render_template, request, stream_with_context, url_for

from shop import payments
from shop.admin import bp
from shop.admin.forms import ExportForm, OrderStatusForm, RefundForm
from shop.auth.decorators import admin_required
from shop.auth.redirects import safe_next
from shop.forms import first_error
from shop.inputs import one_page, submitted
from shop.store import exports, orders, refunds
from shop.store.models import OrderStatus, PaymentStatus, RefundStatus
from shop.store.money import format_money

log = logging.getLogger(__name__)


@bp.get("/orders")
@admin_required
def orders_list():
    return _orders_page(_this_month())


def _this_month() -> ExportForm:
    """The export form as the list first shows it: from the first of this month to today (UTC)."""
    today = datetime.now(UTC).date()
    return ExportForm(formdata=None, data={"from": today.replace(day=1).isoformat(), "to": today.isoformat()})


def _orders_page(export_form: ExportForm, code: int = 200):
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
        staff_moves=orders.staff_moves,
        export_form=export_form,
    ), code


@bp.get("/orders/export")
@admin_required
def orders_export():
    """The CSV download, streamed as it is read; a date that is not one is the list again, with its sentence
    beside the field (400)."""
    form = ExportForm(formdata=request.args)
    if not form.validate():
        return _orders_page(form, 400)
    rows = exports.order_lines_csv(form.start, form.end)
    log.info("orders from %s to %s exported by admin %s", form.start, form.end, g.user.clerk_id)
    return Response(
        stream_with_context(rows),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{exports.file_name(form.start, form.end)}"',
            "Cache-Control": "no-store",  # customers' e-mails: no copy in any cache
        },
    )


@bp.get("/orders/<id:order_id>")
@admin_required
def order_detail(order_id: int):
    order = orders.get(order_id)
    if order is None:
        abort(404)
    moves = orders.staff_moves(order)
    return render_template(
        "admin/order.html",
        order=order,
        # Shipping has a form of its own (with the tracking number); the menu offers the other moves.
        can_ship=OrderStatus.SHIPPED in moves,
        ship_form=OrderStatusForm(),
        next_statuses=[status for status in moves if status != OrderStatus.SHIPPED],
        can_refund=order.status == OrderStatus.CANCELLED
        and (
            order.payment_status == PaymentStatus.PAID
            or (order.payment_status == PaymentStatus.REFUND_PENDING and not order.stripe_refund_id)
        ),
        refund_form=RefundForm(),
        refundable=refunds.refundable(order),
        part_refunds=refunds.of_order(order.id),
    )


@bp.post("/orders/<id:order_id>/refund-part")
@admin_required
def order_refund_part(order_id: int):
    """Refund chosen units of the order's lines, or an amount (shop.store.refunds decides, Stripe is asked
    after); at most what is left. Each refusal is one sentence on the order's page."""
    order = orders.get(order_id)
    if order is None:
        abort(404)
    back = url_for("admin.order_detail", order_id=order_id)
    form = RefundForm()
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(back)
    try:
        quantities = form.quantities([item.id for item in order.items])
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(back)
    if quantities and form.amount_cents is not None:
        flash("Choose lines or enter an amount, not both.", "error")
        return redirect(back)
    try:
        refund = payments.checkout.refund_part(
            order_id,
            quantities=quantities or None,
            amount=form.amount_cents,
            restock=form.restock.data,
            by=f"admin {g.user.clerk_id}",
        )
    except orders.OrderNotFound:
        abort(404)
    except (refunds.RefundRefused, payments.PaymentsUnavailable) as exc:
        flash(str(exc), "error")
    else:
        flash(f"{format_money(refund.amount_cents, order.currency)} of order #{order_id} is being refunded.", "success")
    return redirect(back)


@bp.post("/orders/<id:order_id>/refunds/<id:refund_id>/ask-again")
@admin_required
def order_refund_part_again(order_id: int, refund_id: int):
    """Ask Stripe again for a partial refund it could not be asked for (the same key: never twice)."""
    refund = refunds.get(refund_id)
    if refund is None or refund.order_id != order_id or refund.status != RefundStatus.REQUESTED:
        abort(404)
    form = RefundForm()  # CSRF only
    if not form.validate_on_submit():
        flash(first_error(form), "error")
    else:
        try:
            payments.checkout.ask_partial_refund(refund_id)
        except (refunds.RefundRefused, payments.PaymentsUnavailable) as exc:
            flash(str(exc), "error")
        else:
            flash(f"The refund of order #{order_id} was asked of Stripe.", "success")
    return redirect(url_for("admin.order_detail", order_id=order_id))


@bp.post("/orders/<id:order_id>/status")
@admin_required
def order_move(order_id: int):
    form = OrderStatusForm()
    back = safe_next(form.next.data, url_for("admin.order_detail", order_id=order_id))
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(back)
    target = submitted(form.status.data)
    tracking_number = form.tracking_number.data or None
    by = f"admin {g.user.clerk_id}"
    try:
        if target == OrderStatus.CANCELLED:  # settles the money at Stripe first: expire, or refund
            order = payments.checkout.cancel(order_id, by=by)
        else:
            order = orders.move(order_id, target, by=by, tracking_number=tracking_number)
    except orders.OrderNotFound:
        abort(404)
    except (orders.TransitionRefused, payments.PaymentsUnavailable) as exc:
        flash(str(exc), "error")
    else:
        refunding = order.payment_status in (PaymentStatus.REFUND_PENDING, PaymentStatus.REFUNDED)
        refund = " and its payment is being refunded" if refunding else ""
        tracking = f", tracking number {tracking_number}" if tracking_number else ""
        flash(f"Order #{order_id} is now {target}{refund}{tracking}.", "success")
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
