"""What every form of the shop shares (the shopper's in shop/storefront/forms.py, the staff's in
shop/admin/forms.py): the one sentence a refused form flashes, a whole-number field with one message,
and the strip filter."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import NumberRange, Optional

MAX_WHOLE_NUMBER = 2**63 - 1  # beyond any column (BIGINT); also what NumberRange can compare without overflow


def first_error(form: FlaskForm) -> str:
    """The form's first error: the one sentence a page that flashes shows."""
    return next(error for errors in form.errors.values() for error in errors)


class WholeNumberField(IntegerField):
    """A whole number from `least` to `most` whose every refusal (missing, not a number, out of
    range) is the one sentence `message`, not WTForms' "Not a valid integer value." beside it."""

    def __init__(
        self,
        label: str | None = None,
        *,
        least: int,
        most: int | None = None,
        message: str,
        optional: bool = False,
        **kw,
    ):
        validators = [Optional()] if optional else []
        super().__init__(label, validators=[*validators, NumberRange(min=least, max=most, message=message)], **kw)

    def process_formdata(self, valuelist: list) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError:
            self.data = None  # NumberRange then refuses it with `message`
        if self.data is not None and abs(self.data) > MAX_WHOLE_NUMBER:
            self.data = None  # NumberRange's float() of a 400-digit number would raise OverflowError


def strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value
