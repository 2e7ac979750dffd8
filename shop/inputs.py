"""What the shop accepts from URLs, query strings and forms, checked before any of it reaches SQL.

- `<id:…>` in a route: a database id, 1 to 2**63 - 1 (bigint), at most 19 digits. Anything else is
  no such page (404) when the URL is matched: the view never runs.
- `<slug:…>`: a product slug as the staff's form allows it (lower-case letters, digits, dashes;
  at most 80 characters); anything else is 404.
- No NUL anywhere in a query string or a form: PostgreSQL's text cannot hold it (400).
- `page_number()` and `search_text()`: the one way views read a page number or a search; `one_page()`
  the one way a list is cut into pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import Flask, abort, request
from werkzeug.routing import BaseConverter, IntegerConverter, Map, ValidationError

Item = TypeVar("Item")
MAX_DATABASE_ID = 2**63 - 1  # PostgreSQL bigint, the type of every id column
MAX_PAGE = 1_000
SLUG = r"[a-z0-9]+(?:-[a-z0-9]+)*"  # a product's address, as the staff's form and the catalogue check it
MAX_SLUG_LENGTH = 80  # products.slug is VARCHAR(80)
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_DIGITS = re.compile(r"[0-9]+")


class DatabaseId(IntegerConverter):
    # Every id below 9 * 10**18 (BIGINT ends at 9.22 * 10**18) and nothing else: a URL beyond does not
    # match at all. Bounding in the regex, not in to_python, matters: a rule whose converter refuses
    # the value still counts as matched for its methods, so a POST-only twin of a GET route (or the
    # other way round) would answer 405 instead of 404. [0-9], not \d, which also matches other scripts'
    # digits (/orders/ and an Arabic-Indic one was order 1 again). Werkzeug ends the pattern with \Z.
    regex = r"[1-9][0-9]{0,17}|[1-8][0-9]{18}"

    def __init__(self, map: Map) -> None:
        super().__init__(map, min=1, max=MAX_DATABASE_ID)


class Slug(BaseConverter):
    regex = SLUG

    def to_python(self, value: str) -> str:
        if len(value) > MAX_SLUG_LENGTH:
            raise ValidationError()
        return value


def page_number() -> int:
    """`?page=`: 1 when absent or not a positive number (a hand-edited URL still shows a page);
    404 past MAX_PAGE, so no query ever computes an offset the database cannot hold."""
    digits = request.args.get("page", "").strip().lstrip("0")
    if not _DIGITS.fullmatch(digits):  # absent, 0, negative, not a number
        return 1
    if len(digits) > len(str(MAX_PAGE)) or int(digits) > MAX_PAGE:  # no int() of a 5,000-digit string
        abort(404)
    return int(digits)


@dataclass(frozen=True, slots=True)
class Page(Generic[Item]):
    items: list[Item]
    number: int
    has_next: bool


def one_page(fetch: Callable[[int, int], Sequence[Item]], per_page: int) -> Page[Item]:
    """The page `?page=` asks for: `fetch(limit, offset)` reads one row more than is shown, and that row
    only says whether a next page exists. Cheaper than a COUNT over the whole list (Flask-SQLAlchemy's
    `paginate` runs one, and without it cannot say whether there is a next page)."""
    number = page_number()
    found = fetch(per_page + 1, (number - 1) * per_page)
    return Page(list(found[:per_page]), number, len(found) > per_page)


def search_text(name: str, max_length: int) -> str:
    """A search box's text: stripped, and cut to `max_length` characters (a longer search finds nothing more)."""
    return request.args.get(name, "").strip()[:max_length]


def _refuse_nul() -> None:
    """400 for a NUL in a query string or a form, on every route, before a view can pass it to SQL.
    A body is read as a form only when it is one: CSRF protection parses those anyway, and the
    webhooks, which read their raw JSON body themselves, are left alone."""
    sources = [request.args, request.form] if request.mimetype in FORM_TYPES else [request.args]
    for source in sources:
        for key, values in source.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                abort(400)


def register(app: Flask) -> None:
    """Before any blueprint: their routes name these converters."""
    app.url_map.converters["id"] = DatabaseId
    app.url_map.converters["slug"] = Slug
    app.before_request(_refuse_nul)


T = TypeVar("T")


def submitted(value: T | None) -> T:
    """A required field of a form that validate_on_submit() accepted: its validators refused the form
    if it was empty, so None here means a form class lost its DataRequired."""
    if value is None:
        raise ValueError("a required field of a validated form is empty: check the form's validators")
    return value
