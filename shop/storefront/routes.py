"""The shopper's pages. Thin: every rule is in the services (shop/store/: catalogue, cart, checkout, orders;
shop/payments/: Stripe)."""

from __future__ import annotations

import contextlib

from flask import abort, flash, g, redirect, render_template, request, session, url_for

from shop import payments
from shop.auth.decorators import form_login_required, login_required
from shop.auth.redirects import safe_next
from shop.forms import first_error
from shop.inputs import one_page, page_number, search_text, submitted
from shop.store import addresses, cart, catalogue, checkout, orders, shipping
from shop.store.models import OrderStatus, PaymentStatus
from shop.storefront import bp
from shop.storefront.forms import AddressForm, CartAddForm, CartQuantityForm, CheckoutForm, PayNowForm

PENDING_KEY = "pending_cart"  # what a signed-out shopper asked to add, kept until they sign in
MAX_PENDING = 20


def _who() -> str:
    return f"customer {g.user.clerk_id}"


# --- catalogue ------------------------------------------------------------------------------------------


@bp.get("/")
def catalogue_page():
    page = catalogue.search(
        search_text("q", catalogue.MAX_QUERY_LENGTH),
        page_number(),
        cart_of=g.user.id if g.user is not None else None,
    )
    if page.cart_count is not None:
        g.cart_count = page.cart_count  # the header's number came with the products
    # Past the last page (an old link, a hand-edited ?page=): a page that does not exist, said so.
    missing = not page.products and page.page > page.pages
    html = render_template("store/catalogue.html", result=page, max_quantity=cart.MAX_QUANTITY, missing_page=missing)
    return html, 404 if missing else 200


@bp.get("/products/<slug:slug>")
def product_page(slug: str):
    product = catalogue.active_product(slug)
    if product is None:
        abort(404)
    return render_template("store/product.html", product=product, max_quantity=cart.MAX_QUANTITY)


# --- cart -----------------------------------------------------------------------------------------------


def _add_pending() -> None:
    """After sign-in: add what the shopper asked for while signed out."""
    for slug, quantity in session.pop(PENDING_KEY, []):
        try:
            line = cart.add(g.user.id, slug=slug, quantity=quantity)
        except cart.CartError as exc:
            flash(str(exc), "error")
        else:
            flash(f"Added {quantity} × {line.product.name} to your cart.", "success")


@bp.post("/cart/add")
def cart_add():
    form = CartAddForm()
    slug = form.slug.data or ""
    back = safe_next(form.next.data, url_for("store.product_page", slug=slug) if slug else "/")
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(back)
    quantity = submitted(form.quantity.data)
    if g.user is None:
        product = catalogue.active_product(slug)
        if product is None:
            flash("This product is no longer available.", "error")
            return redirect(back)
        # Kept in the (signed) session cookie, then added by GET /cart once signed in: no
        # JavaScript needed, and nothing to forge (this POST was CSRF-checked).
        pending = [*session.get(PENDING_KEY, []), [slug, quantity]][-MAX_PENDING:]
        session[PENDING_KEY] = pending
        flash(f"Sign in to add {product.name} to your cart.", "info")
        return redirect(url_for("auth.sign_in", next=url_for("store.cart_page")))
    try:
        line = cart.add(g.user.id, slug=slug, quantity=quantity)
    except cart.CartError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Added {quantity} × {line.product.name} to your cart.", "success")
    return redirect(back)


@bp.get("/cart")
@login_required
def cart_page():
    if PENDING_KEY in session:
        _add_pending()
        return redirect(url_for("store.cart_page"))  # a reload must not add it twice
    lines = cart.lines(g.user.id)
    g.cart_count = sum(line.quantity for line in lines)  # the header's number, without asking again
    return render_template("store/cart.html", lines=lines, totals=cart.totals(lines), max_quantity=cart.MAX_QUANTITY)


@bp.post("/cart/items/<id:product_id>")
@form_login_required(lambda **_: url_for("store.cart_page"))
def cart_update(product_id: int):
    form = CartQuantityForm()
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(url_for("store.cart_page"))
    quantity = submitted(form.quantity.data)
    try:
        line = cart.set_quantity(g.user.id, product_id, quantity)
    except cart.CartError as exc:
        flash(str(exc), "error")
    else:
        flash(f"{line.product.name}: quantity {quantity}." if line else "Removed from your cart.", "success")
    return redirect(url_for("store.cart_page"))


@bp.post("/cart/items/<id:product_id>/remove")
@form_login_required(lambda **_: url_for("store.cart_page"))
def cart_remove(product_id: int):
    if cart.remove(g.user.id, product_id):
        flash("Removed from your cart.", "success")
    else:
        flash("That item is not in your cart.", "error")
    return redirect(url_for("store.cart_page"))


# --- checkout -------------------------------------------------------------------------------------------


def _address_form() -> AddressForm:
    """The checkout's "new address" fields: part of the checkout form, whose CSRF token covers them."""
    return AddressForm(prefix="new", meta={"csrf": False})


@bp.get("/checkout")
@login_required
def checkout_page(form: CheckoutForm | None = None, new_address: AddressForm | None = None, status: int = 200):
    """The checkout; from a refused POST (`form`), drawn again with what it chose and its idempotency
    key, so the corrected submit still places one order."""
    lines = cart.lines(g.user.id)
    if not lines:
        return redirect(url_for("store.cart_page"))  # which says it is empty: no flash to say it twice
    totals = cart.totals(lines)
    book = addresses.list_for_user(g.user.id)
    # The rates are priced for this cart (free above a total); with items in two currencies the order
    # is refused anyway, so none is offered.
    rates = shipping.offered(*next(iter(totals.items()))) if len(totals) == 1 else []
    chosen_rate = form.shipping_rate_id.data if form else None
    if chosen_rate not in {rate.rate_id for rate in rates}:
        chosen_rate = rates[0].rate_id if rates else None  # the cheapest, so that one click goes on to pay
    return render_template(
        "store/checkout.html",
        lines=lines,
        totals=totals,
        rates=rates,
        chosen_rate=chosen_rate,
        expected_total=next(iter(totals.values())) if len(totals) == 1 else None,
        idempotency_key=form.idempotency_key.data if form else checkout.new_idempotency_key(),
        addresses=book,
        chosen=form.address_id.data if form else (str(book[0].id) if book else "new"),
        new_address=new_address or _address_form(),
    ), status


def _shipping_address(form: CheckoutForm) -> tuple[addresses.ShippingAddress | None, AddressForm]:
    """The address the checkout form chose (None: see the form's errors), and the new-address form."""
    new_address = _address_form()
    if form.address_id.data != "new":
        address = addresses.get_for_user(g.user.id, int(submitted(form.address_id.data)))
        return (addresses.ShippingAddress.of(address) if address else None), new_address
    return (new_address.address() if new_address.validate() else None), new_address


@bp.post("/checkout")
@form_login_required(lambda **_: url_for("store.checkout_page"))
def checkout_submit():
    try:
        payments.client()  # no payment service configured: say so before anything is placed
    except payments.PaymentsUnavailable as exc:
        flash(str(exc), "error")
        return redirect(url_for("store.checkout_page"))
    form = CheckoutForm()
    if not form.validate_on_submit() and (form.idempotency_key.errors or form.expected_total.errors):
        flash(checkout.OUT_OF_DATE, "error")
        return redirect(url_for("store.checkout_page"))
    if form.shipping_rate_id.errors:  # not even an id: a forged or mangled form
        flash(form.shipping_rate_id.errors[0], "error")
        return checkout_page(form, new_address=_address_form(), status=400)
    address, new_address = _shipping_address(form) if not form.address_id.errors else (None, _address_form())
    if address is None:
        flash("Choose a shipping address, or complete the new one.", "error")
        return checkout_page(form, new_address=new_address, status=400)
    # One checkout at a time per shopper: earlier open sessions are expired and their stock given back.
    payments.checkout.expire_earlier_checkouts(g.user.id, keep_key=submitted(form.idempotency_key.data))
    try:
        placed = checkout.place_order(
            g.user.id,
            submitted(form.idempotency_key.data),
            expected_total_cents=form.expected_total.data,
            address=address,
            shipping_rate_id=form.shipping_rate_id.data,
        )
    except checkout.EmptyCart:
        return redirect(url_for("store.cart_page"))  # which says it is empty
    except checkout.OutOfStock as exc:
        flash(str(exc), "error")
        return redirect(url_for("store.cart_page"))
    except checkout.CheckoutError as exc:
        flash(str(exc), "error")
        return redirect(url_for("store.checkout_page"))
    order = placed.order
    if placed.created and form.address_id.data == "new":
        with contextlib.suppress(addresses.AddressError):  # kept in the book for next time, unless it is full
            addresses.add(g.user.id, address)
    if order.payment_status != PaymentStatus.PENDING:  # a double submit of a form whose order is settled
        flash(f"Order #{order.id} was already placed; it was not placed twice.", "info")
        return redirect(url_for("store.order_page", order_id=order.id))
    try:
        payment_url = payments.checkout.start(order)
    except payments.PaymentsUnavailable as exc:
        lines = [(item.product_id, item.quantity) for item in order.items if item.product_id is not None]
        payments.checkout.give_up(order.id)
        for product_id, quantity in lines:  # the stock went back: so do the items, to the cart
            with contextlib.suppress(cart.CartError):
                cart.add(g.user.id, product_id=product_id, quantity=quantity)
        flash(f"{exc} Nothing was charged and your cart was kept.", "error")
        return redirect(url_for("store.cart_page"))
    return redirect(payment_url, code=303)


# --- orders ---------------------------------------------------------------------------------------------


@bp.get("/orders")
@login_required
def orders_page():
    page = one_page(lambda limit, offset: orders.history(g.user.id, limit=limit, offset=offset), orders.PER_PAGE)
    return render_template("store/orders.html", orders=page.items, page=page.number, has_next=page.has_next)


@bp.get("/orders/<id:order_id>")
@login_required
def order_page(order_id: int):
    """The order, and its one next step: *Pay now* while it waits for a payment, *Put these items back in
    my cart* once cancelled. While the payment is pending the page watches for its outcome by itself."""
    order = orders.get_for_user(g.user.id, order_id)
    if order is None:
        abort(404)  # someone else's order is not there for you (no probing)
    pending = order.status == OrderStatus.PLACED and order.payment_status == PaymentStatus.PENDING
    # A payment on its way (or the return page could not ask Stripe): nothing to pay, only to wait for.
    asked_to_wait = request.args.get("confirming") == "1"
    confirming = pending and (order.payment_processing or asked_to_wait)
    return render_template(
        "store/order.html",
        order=order,
        can_cancel=order.status == OrderStatus.PLACED,
        can_pay=payments.checkout.payable(order) and not asked_to_wait,
        confirming=confirming,
        watch=pending,
        can_put_back=order.status == OrderStatus.CANCELLED,
        payment_words=orders.payment_words(order.payment_status, order.payment_processing),
    )


@bp.post("/orders/<id:order_id>/pay")
@form_login_required(lambda order_id: url_for("store.order_page", order_id=order_id))
def order_pay(order_id: int):
    """*Pay now*: a new Checkout Session (the open one expired first), and off to Stripe's page."""
    form = PayNowForm()
    back = url_for("store.order_page", order_id=order_id)
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(back)
    try:
        payment_url = payments.checkout.pay_now(order_id, user_id=g.user.id, attempt=submitted(form.attempt.data))
    except orders.OrderNotFound:
        abort(404)
    except payments.checkout.NothingToPay as exc:
        flash(str(exc), "info")
        return redirect(back)
    except payments.PaymentsUnavailable as exc:
        flash(f"{exc} Your items are still held for you.", "error")
        return redirect(back)
    return redirect(payment_url, code=303)


@bp.post("/orders/<id:order_id>/put-back")
@form_login_required(lambda order_id: url_for("store.order_page", order_id=order_id))
def order_put_back(order_id: int):
    """After a failed or abandoned payment: the order's items back in the cart, as stock allows."""
    try:
        result = cart.put_back(g.user.id, order_id)
    except orders.OrderNotFound:
        abort(404)
    except cart.CartError as exc:
        flash(str(exc), "error")
        return redirect(url_for("store.order_page", order_id=order_id))
    if result.lines:
        flash(f"The items of order #{order_id} are in your cart again.", "success")
    if result.missing:
        flash(f"Not everything could be put back: {'; '.join(result.missing)}.", "error")
    if not result.lines:
        return redirect(url_for("store.order_page", order_id=order_id))
    return redirect(url_for("store.cart_page"))


@bp.get("/orders/<id:order_id>/cancel")
@login_required
def order_cancel_confirm(order_id: int):
    """The confirmation step before cancelling: a page, so it works without JavaScript."""
    order = orders.get_for_user(g.user.id, order_id)
    if order is None:
        abort(404)
    if order.status != OrderStatus.PLACED:
        flash(f"Order #{order_id} is {order.status}: it can no longer be cancelled.", "info")
        return redirect(url_for("store.order_page", order_id=order_id))
    return render_template("store/cancel.html", order=order)


@bp.post("/orders/<id:order_id>/cancel")
@form_login_required(lambda order_id: url_for("store.order_page", order_id=order_id))
def order_cancel(order_id: int):
    try:
        order = payments.checkout.cancel(order_id, by=_who(), user_id=g.user.id)
    except orders.OrderNotFound:
        abort(404)
    except (orders.TransitionRefused, payments.PaymentsUnavailable) as exc:
        flash(str(exc), "error")
    else:
        if order.payment_status in (PaymentStatus.REFUND_PENDING, PaymentStatus.REFUNDED):  # the webhook may be quick
            flash(f"Order #{order_id} is cancelled; your payment is being refunded.", "success")
        else:
            flash(f"Order #{order_id} is cancelled.", "success")
    return redirect(url_for("store.order_page", order_id=order_id))
