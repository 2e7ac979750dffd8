"""The shopper's address form (Flask-WTF: CSRF included)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from shop.store.addresses import ShippingAddress


def _printable(form: FlaskForm, field: StringField) -> None:
    """PostgreSQL's text cannot hold NUL, and no address needs a control character."""
    if field.data and any(ord(ch) < 32 or ord(ch) == 127 for ch in field.data):
        raise ValidationError("Remove the control characters from this field.")


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def _upper(value: str | None) -> str | None:
    return value.strip().upper() if isinstance(value, str) else value


def _text(most: int, *, required: bool = True) -> list:
    return [DataRequired() if required else Optional(), Length(max=most), _printable]


class AddressForm(FlaskForm):
    name = StringField("Full name", filters=[_strip], validators=_text(200))
    line1 = StringField("Street and number", filters=[_strip], validators=_text(200))
    line2 = StringField("Apartment, floor (optional)", filters=[_strip], validators=_text(200, required=False))
    postal_code = StringField("Postal code", filters=[_strip], validators=_text(20))
    city = StringField("City", filters=[_strip], validators=_text(100))
    country = StringField(
        "Country code",
        default="FR",
        filters=[_upper],
        validators=[DataRequired(), Regexp(r"^[A-Z]{2}$", message="A two-letter country code such as FR or DE.")],
    )
    make_default = BooleanField("Use as my default address")

    def address(self) -> ShippingAddress:
        return ShippingAddress(
            name=self.name.data,
            line1=self.line1.data,
            line2=self.line2.data or None,
            postal_code=self.postal_code.data,
            city=self.city.data,
            country=self.country.data,
        )
