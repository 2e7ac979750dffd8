"""The staff's forms (Flask-WTF: CSRF included). What a person types about a product is checked
here and only here; the catalogue service keeps what only the database can decide (a slug taken,
stock that moved meanwhile)."""

from __future__ import annotations

import re
from datetime import date

from flask import request
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileSize
from wtforms import BooleanField, HiddenField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, Optional, Regexp, ValidationError
from wtforms.widgets import HiddenInput

from shop import images
from shop.forms import WholeNumberField, strip
from shop.inputs import MAX_SLUG_LENGTH, SLUG, submitted
from shop.models import Role
from shop.store.catalogue import ProductFields
from shop.store.models import LOW_STOCK_THRESHOLD, TRACKING_NUMBER_LENGTH, OrderStatus
from shop.store.money import parse_price

MAX_STOCK = 1_000_000  # products.stock is INTEGER; a larger number is a typo
STOCK_RANGE = f"Stock: a whole number from 0 to {MAX_STOCK:,}."
MAX_STOCK_COLUMN = 2**31 - 1  # products.stock is INTEGER: what a page can have shown as the stock
STOCK_SHOWN = "This form is out of date or was altered: reload the page and try again."
# \Z, not $, ends every pattern: Regexp calls re.match, and $ also matches before a final newline.
TRACKING_NUMBER = r"^[A-Za-z0-9](?:[A-Za-z0-9 -]*[A-Za-z0-9])?\Z"
TRACKING_NUMBER_RULE = (
    f"Tracking number: up to {TRACKING_NUMBER_LENGTH} letters, digits, spaces or dashes, as the carrier gives it."
)
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
    low_stock_threshold = WholeNumberField(
        "Low-stock alert at",
        least=0,
        most=MAX_STOCK,
        message=f"Low-stock alert: a whole number from 0 to {MAX_STOCK:,}.",
        default=LOW_STOCK_THRESHOLD,
        description="Stock at or below this is listed on the dashboard, and staff get an e-mail when it falls to it.",
    )
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
    # Shown instead of the path above. The name and the size are checked here for a quick answer; the
    # bytes decide (validate_image_file): a file is what its content says, whatever it is called.
    image_file = FileField(
        f"Upload an image (PNG, JPEG or WebP, at most {images.UPLOAD_MAX_BYTES // (1024 * 1024)} MB)",
        description=(
            f"Up to {images.MAX_SIDE:,} pixels a side. The shop keeps a copy at most {images.STORED_MAX_SIDE:,} "
            "pixels on its longer side, without the file's metadata (such as where a photo was taken)."
        ),
        validators=[
            FileAllowed(images.UPLOAD_EXTENSIONS, message=images.NOT_AN_IMAGE),
            FileSize(images.UPLOAD_MAX_BYTES, message=images.FILE_TOO_LARGE),
        ],
    )
    remove_image_file = BooleanField("Remove the uploaded image")
    prepared_image: images.PreparedImage | None = None  # the upload as it will be kept, once validated

    def validate_price(self, field: StringField) -> None:
        try:
            self.price_cents = parse_price(field.data or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        except ArithmeticError:  # decimal.Overflow: "1e999999999999999999" times 100 is past Decimal's range
            raise ValidationError("Enter a price such as 12.50.") from None

    def validate_image_file(self, field: FileField) -> None:
        if field.errors or not field.data:  # refused by name or size already, or no file chosen
            return
        try:
            self.prepared_image = images.prepare_upload(field.data.read(images.UPLOAD_MAX_BYTES + 1))
        except images.ImageRefused as exc:
            raise ValidationError(str(exc)) from None

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
            low_stock_threshold=submitted(self.low_stock_threshold.data),
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


def _single_spaces(value: str | None) -> str | None:
    """Stripped, each run of spaces one space: a number pasted from a carrier's page, as it will be printed."""
    return " ".join(value.split()) if isinstance(value, str) else value


class OrderStatusForm(FlaskForm):
    status = StringField(
        validators=[AnyOf([s.value for s in OrderStatus], message="Choose one of the statuses offered.")]
    )
    # Optional, with shipping only: printed in the "shipped" e-mail and on the order pages, so only what a
    # carrier's number is made of (no markup, no line break to forge a line of the e-mail).
    tracking_number = StringField(
        "Tracking number (optional)",
        filters=[_single_spaces],
        validators=[
            Optional(),
            Length(max=TRACKING_NUMBER_LENGTH, message=TRACKING_NUMBER_RULE),
            Regexp(TRACKING_NUMBER, message=TRACKING_NUMBER_RULE),
        ],
    )
    next = HiddenField()

    def validate_tracking_number(self, field: StringField) -> None:
        if field.data and self.status.data != OrderStatus.SHIPPED:
            raise ValidationError("A tracking number goes with Shipped only: choose Shipped, or leave it empty.")


class MailRetryForm(FlaskForm):
    """The E-mail pages' "Send again" button on a failed e-mail: its CSRF token, and the page to go back to."""

    next = HiddenField()


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # what <input type="date"> sends: 2026-12-01


def _date_field(label: str, example: str) -> StringField:
    sentence = f"{label}: a date such as {example}."

    def real_date(form: FlaskForm, field: StringField) -> None:
        # The pattern first: date.fromisoformat also reads 20261201 and 2026-W49-1.
        if not ISO_DATE.fullmatch(field.data or ""):
            raise ValidationError(sentence)
        try:
            date.fromisoformat(field.data or "")
        except ValueError:  # 2026-02-30
            raise ValidationError(sentence) from None

    return StringField(label, filters=[strip], validators=[real_date])


class ExportForm(FlaskForm):
    """The orders export's date range, read from the query string (?from=…&to=…). A GET that changes
    nothing: no CSRF token, which would only end up in URLs and logs."""

    class Meta:
        csrf = False

    to = _date_field("To", "2026-12-31")
    start: date  # the range, once validate() accepted it
    end: date

    def validate(self, extra_validators=None) -> bool:
        """Each date must be one, and the range must not run backwards: one sentence for each."""
        if not super().validate(extra_validators):
            return False
        self.start = date.fromisoformat(submitted(self["from"].data))
        self.end = date.fromisoformat(submitted(self["to"].data))
        if self.start > self.end:
            self["to"].errors = [f"To: a date on or after the first day ({self.start.isoformat()})."]
            return False
        return True


# `from` is a keyword, so this field is added as WTForms allows for any name (setattr on the class): the query
# reads ?from=2026-12-01&to=2026-12-31, as the command's --from and --to.
setattr(ExportForm, "from", _date_field("From", "2026-12-01"))


MAX_REFUND_UNITS = 1_000_000  # beyond any order's quantity


class RefundForm(FlaskForm):
    """A partial refund: how many units of each line (fields `qty-<order item id>`, added per order by the
    page), or an amount; and whether the refunded units' stock goes back. The order's own rules (never more
    than is left) are shop.store.refunds'."""

    amount = StringField("Or an amount", filters=[strip], validators=[Optional(), Length(max=20)])
    restock = BooleanField("Put the stock of refunded lines back")
    amount_cents: int | None = None  # the amount, parsed by validate_amount

    def validate_amount(self, field: StringField) -> None:
        try:
            self.amount_cents = parse_price(field.data) if field.data else None
        except ValueError as exc:
            raise ValidationError(f"Amount: {exc}") from None

    def quantities(self, item_ids: list[int]) -> dict[int, int]:
        """The units chosen per line (blank: none). Raises ValueError with the sentence to show."""
        chosen: dict[int, int] = {}
        for item_id in item_ids:
            text = (request.form.get(f"qty-{item_id}") or "").strip()
            if not text:
                continue
            if not (text.isascii() and text.isdigit()) or int(text) > MAX_REFUND_UNITS:
                raise ValueError("Quantities to refund are whole numbers, such as 1; leave a line blank to keep it.")
            if int(text):
                chosen[item_id] = int(text)
        return chosen
