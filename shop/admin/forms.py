"""The staff's product form (Flask-WTF: CSRF included)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from shop.store.catalogue import MAX_STOCK, SLUG_PATTERN
from shop.store.money import parse_price


class ProductForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    slug = StringField(
        "Slug (the address: /products/<slug>)",
        validators=[
            DataRequired(),
            Length(max=80),
            Regexp(SLUG_PATTERN, message="Lower-case letters, digits and single dashes, such as blue-mug."),
        ],
    )
    description = TextAreaField("Description", validators=[Optional(), Length(max=5000)])
    price = StringField("Price", validators=[DataRequired()])
    currency = StringField(
        "Currency",
        default="EUR",
        validators=[DataRequired(), Regexp(r"^[A-Z]{3}$", message="A three-letter code such as EUR.")],
    )
    stock = IntegerField("Stock", default=0, validators=[NumberRange(min=0, max=MAX_STOCK)])
    seen_stock = HiddenField()
    active = BooleanField("Active (shown in the catalogue)", default=True)
    image = StringField("Image (a file under static/, such as products/ceramic-mug.svg)")

    def validate_price(self, field: StringField) -> None:
        try:
            self.price_cents = parse_price(field.data or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
