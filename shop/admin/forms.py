"""The staff's forms (Flask-WTF: CSRF included). What a person types about a product is checked
here and only here; the catalogue service keeps what only the database can decide (a slug taken,
stock that moved meanwhile)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, Optional, Regexp, ValidationError
from wtforms.widgets import HiddenInput

from shop.forms import WholeNumberField, strip
from shop.inputs import MAX_SLUG_LENGTH, SLUG, submitted
from shop.models import Role
from shop.store.catalogue import ProductFields
from shop.store.models import OrderStatus
from shop.store.money import parse_price

MAX_STOCK = 1_000_000  # products.stock is INTEGER; a larger number is a typo
STOCK_RANGE = f"Stock: a whole number from 0 to {MAX_STOCK:,}."
MAX_STOCK_COLUMN = 2**31 - 1  # products.stock is INTEGER: what a page can have shown as the stock
STOCK_SHOWN = "This form is out of date or was altered: reload the page and try again."
# \Z, not $, ends every pattern: Regexp calls re.match, and $ also matches before a final newline.
IMAGE_PATH = r"^(?=.{1,200}\Z)[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*\.(?:svg|png|jpe?g|webp|gif)\Z"


def _stock(label: str = "Stock", **kwargs) -> WholeNumberField:
    return WholeNumberField(label, least=0, most=MAX_STOCK, message=STOCK_RANGE, **kwargs)


def _stock_shown(**kwargs) -> WholeNumberField:
    """The stock the page showed (hidden), compared with the column's in SQL: bounded by the column,
    not by MAX_STOCK (a stock above it, set in psql or grown by cancellations, can still be shown),
    so that PostgreSQL is never asked to compare with a number INTEGER cannot hold."""
    return WholeNumberField(least=0, most=MAX_STOCK_COLUMN, message=STOCK_SHOWN, widget=HiddenInput(), **kwargs)


class ProductForm(FlaskForm):
    name = StringField(
        "Name", filters=[strip], validators=[DataRequired(), Length(max=120, message="Name: at most 120 characters.")]
    )
    slug = StringField(
        "Slug (the address: /products/<slug>)",
        filters=[strip],
        validators=[
            DataRequired(),
            Length(max=MAX_SLUG_LENGTH, message=f"Slug: at most {MAX_SLUG_LENGTH} characters."),
            Regexp(rf"^{SLUG}\Z", message="Lower-case letters, digits and single dashes, such as blue-mug."),
        ],
    )
    description = TextAreaField("Description", filters=[strip], validators=[Optional(), Length(max=5000)])
    price = StringField("Price", validators=[DataRequired()])
    currency = StringField(
        "Currency",
        default="EUR",
        filters=[strip],
        validators=[DataRequired(), Regexp(r"^[A-Z]{3}\Z", message="A three-letter code such as EUR.")],
    )
    stock = _stock(default=0)
    seen_stock = _stock_shown(optional=True)  # none sent: the stock is saved without that check
    active = BooleanField("Active (shown in the catalogue)", default=True)
    image = StringField(
        "Image (a file under static/, such as products/ceramic-mug.svg)",
        filters=[strip],
        # Only files this shop serves: the Content-Security-Policy allows no other image hosts.
        validators=[
            Optional(),
            Regexp(IMAGE_PATH, message="Image: a file under static/, such as products/ceramic-mug.svg."),
        ],
    )

    def validate_price(self, field: StringField) -> None:
        try:
            self.price_cents = parse_price(field.data or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        except ArithmeticError:  # decimal.Overflow: "1e999999999999999999" times 100 is past Decimal's range
            raise ValidationError("Enter a price such as 12.50.") from None

    def show_stock(self, stock: int) -> None:
        """Draw the form again with `stock` as the stock it shows (it moved while the page was open)."""
        self.seen_stock.data = stock
        self.seen_stock.raw_data = None  # else the field draws what was submitted, not `data`

    def fields(self) -> ProductFields:
        """The product's columns as typed, for catalogue.create_product/update_product."""
        return ProductFields(
            slug=submitted(self.slug.data),
            name=submitted(self.name.data),
            description=self.description.data or "",
            price_cents=self.price_cents,
            currency=submitted(self.currency.data),
            stock=submitted(self.stock.data),
            active=bool(self.active.data),
            image=self.image.data or None,
        )


class StockForm(FlaskForm):
    """The products list's stock box; `seen_stock` is what the list showed (see catalogue.set_stock)."""

    stock = _stock()
    seen_stock = _stock_shown()


class ActiveForm(FlaskForm):
    active = HiddenField(validators=[AnyOf(["0", "1"], message="Choose to show or to hide the product.")])


class RoleForm(FlaskForm):
    role = StringField(validators=[AnyOf([r.value for r in Role], message="Choose CLIENT or ADMIN.")])
    q = HiddenField()  # the search the list showed, to go back to


class OrderStatusForm(FlaskForm):
    status = StringField(
        validators=[AnyOf([s.value for s in OrderStatus], message="Choose one of the statuses offered.")]
    )
    next = HiddenField()


class MailRetryForm(FlaskForm):
    """The E-mail pages' "Send again" button on a failed e-mail: its CSRF token, and the page to go back to."""

    next = HiddenField()
