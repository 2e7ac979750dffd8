"""The shopper's forms (Flask-WTF: CSRF included): cart, checkout and address. What a person types
is checked here; the services keep what depends on the database (stock, the limit per line with
what the cart already holds, a product gone meanwhile)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from shop.forms import WholeNumberField, strip
from shop.inputs import MAX_SLUG_LENGTH, submitted
from shop.store.addresses import ShippingAddress
from shop.store.checkout import KEY_PATTERN, OUT_OF_DATE
from shop.store.shipping import NOT_OFFERED


class CartAddForm(FlaskForm):
    """ "Add to cart" (catalogue, product page): a product by slug; a quantity of 1 when none is sent."""

    slug = HiddenField(validators=[Length(max=MAX_SLUG_LENGTH, message="This product is no longer available.")])
    # No upper bound here: the cart refuses more with the product's name and what it already holds.
    quantity = WholeNumberField(least=1, message="Choose a quantity of at least 1.", default=1)
    next = HiddenField()


class CartQuantityForm(FlaskForm):
    quantity = WholeNumberField(least=0, message="Choose a quantity of 0 (to remove) or more.")


class CheckoutForm(FlaskForm):
    """The checkout's guards and its choice of address (a new one is AddressForm(prefix="new"))."""

    # \Z, not $, ends every pattern of the forms: Regexp calls re.match, and $ also matches before a
    # final newline ("new\n" passed here, then failed int()).
    address_id = HiddenField(
        default="new", validators=[Regexp(r"^(new|[1-9][0-9]{0,17})\Z", message="Choose a shipping address.")]
    )
    idempotency_key = HiddenField(validators=[Regexp(KEY_PATTERN, message=OUT_OF_DATE)])
    expected_total = WholeNumberField(least=0, message=OUT_OF_DATE, optional=True)
    # A radio of the offered rates (none sent: the shop offers none). Whether the id is one offered is
    # checked by checkout in its transaction (shop.store.shipping.choose); here only that it is an id.
    shipping_rate_id = WholeNumberField(least=1, message=NOT_OFFERED, optional=True)


def _printable(form: FlaskForm, field: StringField) -> None:
    """PostgreSQL's text cannot hold NUL, and no address needs a control character."""
    if field.data and any(ord(ch) < 32 or ord(ch) == 127 for ch in field.data):
        raise ValidationError("Remove the control characters from this field.")


def _upper(value: str | None) -> str | None:
    return value.strip().upper() if isinstance(value, str) else value


def _text(most: int, *, required: bool = True) -> list:
    return [DataRequired() if required else Optional(), Length(max=most), _printable]


class AddressForm(FlaskForm):
    name = StringField("Full name", filters=[strip], validators=_text(200))
    line1 = StringField("Street and number", filters=[strip], validators=_text(200))
    line2 = StringField("Apartment, floor (optional)", filters=[strip], validators=_text(200, required=False))
    postal_code = StringField("Postal code", filters=[strip], validators=_text(20))
    city = StringField("City", filters=[strip], validators=_text(100))
    country = StringField(
        "Country code",
        default="FR",
        filters=[_upper],
        validators=[DataRequired(), Regexp(r"^[A-Z]{2}\Z", message="A two-letter country code such as FR or DE.")],
    )
    make_default = BooleanField("Use as my default address")

    def address(self) -> ShippingAddress:
        return ShippingAddress(
            name=submitted(self.name.data),
            line1=submitted(self.line1.data),
            line2=self.line2.data or None,
            postal_code=submitted(self.postal_code.data),
            city=submitted(self.city.data),
            country=submitted(self.country.data),
        )


class PayNowForm(FlaskForm):
    """*Pay now* on a pending order's page: the payment attempt the page was drawn with, so that a second
    click (or a second tab) joins the session the first opened instead of opening one more."""

    attempt = WholeNumberField(
        least=1, message="This page was out of date; check the order below and press Pay now again."
    )
