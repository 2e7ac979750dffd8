"""Staff: products: create, edit (with an uploaded image), stock, activate."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from shop import images
from shop.admin import bp
from shop.admin.forms import ActiveForm, ProductForm, StockForm
from shop.auth.decorators import admin_required
from shop.config import REQUEST_MAX_BYTES
from shop.extensions import db
from shop.forms import first_error
from shop.inputs import submitted
from shop.store import catalogue, orders
from shop.store.models import Product
from shop.store.money import cents_to_text

FORM_ENDPOINTS = frozenset({"admin.product_new", "admin.product_edit"})
# The product form's body: the app-wide limit for the other fields, the largest image, and as much again,
# so that a file somewhat over the cap still reaches the form and gets its sentence there rather than
# the bare "too large" page.
FORM_MAX_BYTES = REQUEST_MAX_BYTES + 2 * images.UPLOAD_MAX_BYTES


def _by() -> str:
    return f"admin {g.user.clerk_id}"


@bp.url_value_preprocessor
def room_for_an_image(endpoint: str | None, values: dict | None) -> None:
    """Let the product form's body be large enough for an image. Here, because this is the one hook
    that runs before CSRFProtect's, which reads the form (and would refuse it at the app's 256 KB)."""
    if endpoint in FORM_ENDPOINTS:
        request.max_content_length = FORM_MAX_BYTES


@bp.get("/products")
@admin_required
def products_list():
    products = db.session.scalars(select(Product).order_by(Product.active.desc(), Product.name)).all()
    return render_template("admin/products.html", products=products, held=orders.held_by_unpaid())


@bp.route("/products/new", methods=["GET", "POST"])
@admin_required
def product_new():
    form = ProductForm()
    if form.validate_on_submit():
        try:
            product = catalogue.create_product(form.fields(), by=_by(), image=form.prepared_image)
        except catalogue.ProductError as exc:
            flash(str(exc), "error")
        else:
            flash(f"{product.name} is created.", "success")
            return redirect(url_for("admin.products_list"))
    return render_template("admin/product_form.html", form=form, product=None)


@bp.route("/products/<id:product_id>", methods=["GET", "POST"])
@admin_required
def product_edit(product_id: int):
    product = db.session.get(Product, product_id)
    if product is None:
        abort(404)
    form = ProductForm(obj=product)
    if request.method == "GET":
        form.price.data = cents_to_text(product.price_cents)
        form.seen_stock.data = product.stock
    if form.validate_on_submit():
        seen = product.stock if form.seen_stock.data is None else form.seen_stock.data
        try:
            catalogue.update_product(
                product_id,
                form.fields(),
                seen_stock=seen,
                by=_by(),
                image=form.prepared_image,
                remove_image=bool(form.remove_image_file.data),
            )
        except catalogue.ProductError as exc:
            flash(str(exc), "error")
            form.show_stock(db.session.get_one(Product, product_id, populate_existing=True).stock)
        else:
            flash(f"{form.name.data} is saved.", "success")
            return redirect(url_for("admin.products_list"))
    elif form.seen_stock.errors:  # a hidden field: the page draws no error beside it
        flash(form.seen_stock.errors[0], "error")
    return render_template("admin/product_form.html", form=form, product=product)


@bp.post("/products/<id:product_id>/stock")
@admin_required
def product_stock(product_id: int):
    form = StockForm()
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(url_for("admin.products_list"))
    try:
        catalogue.set_stock(
            product_id, submitted(form.stock.data), seen_stock=submitted(form.seen_stock.data), by=_by()
        )
    except catalogue.ProductError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Stock set to {form.stock.data}.", "success")
    return redirect(url_for("admin.products_list"))


@bp.post("/products/<id:product_id>/active")
@admin_required
def product_active(product_id: int):
    form = ActiveForm()
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(url_for("admin.products_list"))
    active = form.active.data == "1"
    try:
        product = catalogue.set_active(product_id, active, by=_by())
    except catalogue.ProductError:
        abort(404)
    flash(f"{product.name} is {'active' if active else 'hidden from the catalogue'}.", "success")
    return redirect(url_for("admin.products_list"))
