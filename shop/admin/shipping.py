"""Staff: shipping rates: list, create, edit (deactivate: the rate is no longer offered; orders keep theirs).

The rate's form lives here, beside its only two pages."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from shop.admin import bp
from shop.auth.decorators import admin_required
from shop.extensions import db
from shop.forms import strip
from shop.store import shipping
from shop.store.models import ShippingRate
from shop.store.money import cents_to_text, parse_price


def _price(message: str):
    def check(form: FlaskForm, field: StringField) -> None:
        if not field.data:
            return
        try:
            parse_price(field.data)
        except ValueError as exc:
            raise ValidationError(f"{message}: {exc}") from None

    return check


class ShippingRateForm(FlaskForm):
    name = StringField(
        "Name (as the shopper reads it)",
        filters=[strip],
        validators=[
            DataRequired(message="Give the rate a name, such as Standard."),
            Length(max=shipping.MAX_NAME, message=f"Name: at most {shipping.MAX_NAME} characters."),
        ],
    )
    price = StringField(
        "Price", validators=[DataRequired(message="Price: enter a price such as 4.90."), _price("Price")]
    )
    currency = StringField(
        "Currency",
        default="EUR",
        filters=[strip],
        validators=[DataRequired(), Regexp(r"^[A-Z]{3}\Z", message="Currency: a three-letter code such as EUR.")],
    )
    delivery_estimate = StringField(
        "Delivery estimate (optional)",
        filters=[strip],
        description="Such as 2–4 days.",
        validators=[
            Optional(),
            Length(max=shipping.MAX_ESTIMATE, message=f"Estimate: at most {shipping.MAX_ESTIMATE} characters."),
        ],
    )
    free_above = StringField(
        "Free from an order total of (optional)",
        description="The order's items totalling at least this ship for free; empty: never free.",
        validators=[Optional(), _price("Free from")],
    )
    active = BooleanField("Offered at checkout", default=True)

    def fields(self) -> shipping.RateFields:
        return shipping.RateFields(
            name=self.name.data or "",
            price_cents=parse_price(self.price.data or "0"),  # validated: parses
            currency=self.currency.data or "",
            delivery_estimate=self.delivery_estimate.data or None,
            free_above_cents=parse_price(self.free_above.data) if self.free_above.data else None,
            active=bool(self.active.data),
        )


@bp.get("/shipping")
@admin_required
def shipping_list():
    return render_template("admin/shipping.html", rates=shipping.all_rates())


@bp.route("/shipping/new", methods=["GET", "POST"])
@admin_required
def shipping_new():
    form = ShippingRateForm()
    if form.validate_on_submit():
        try:
            rate = shipping.create(form.fields())
        except shipping.ShippingError as exc:
            flash(str(exc), "error")
        else:
            flash(f"The shipping rate {rate.name} is created.", "success")
            return redirect(url_for("admin.shipping_list"))
    return render_template("admin/shipping_form.html", form=form, rate=None), 400 if form.errors else 200


@bp.route("/shipping/<id:rate_id>", methods=["GET", "POST"])
@admin_required
def shipping_edit(rate_id: int):
    rate = db.session.get(ShippingRate, rate_id)
    if rate is None:
        abort(404)
    form = ShippingRateForm(obj=rate)
    if request.method == "GET":
        form.price.data = cents_to_text(rate.price_cents)
        form.free_above.data = cents_to_text(rate.free_above_cents) if rate.free_above_cents is not None else ""
    if form.validate_on_submit():
        try:
            shipping.update(rate_id, form.fields())
        except shipping.ShippingError as exc:
            flash(str(exc), "error")
        else:
            flash(f"The shipping rate {form.name.data} is saved; orders placed with it keep what they paid.", "success")
            return redirect(url_for("admin.shipping_list"))
    return render_template("admin/shipping_form.html", form=form, rate=rate), 400 if form.errors else 200
