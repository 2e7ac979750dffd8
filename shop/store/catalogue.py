"""Products: the catalogue's search and pages, and the staff's changes to products (their fields
checked by shop.admin.forms.ProductForm, which is what people type them into), with the images they
upload (checked and re-encoded by shop.images.prepare_upload, kept in product_images)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from sqlalchemy import Integer, bindparam, delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from shop.extensions import db
from shop.images import SHA256_HEX, PreparedImage
from shop.inputs import MAX_PAGE
from shop.mail import outbox
from shop.store import stock_alerts
from shop.store.cart import count_statement
from shop.store.models import LOW_STOCK_THRESHOLD, Product, ProductImage

log = logging.getLogger(__name__)

PER_PAGE = 12
MAX_QUERY_LENGTH = 100


@dataclass(frozen=True)
class CataloguePage:
    products: list[Product]
    page: int
    total: int  # active products matching the query, on every page
    per_page: int = PER_PAGE
    query: str = ""
    cart_count: int | None = None  # the shopper's, when asked for and the page has products

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _catalogue_statement(*, searching: bool, with_cart: bool):
    """The catalogue query, built once per shape with bound parameters: every request then only
    binds values, instead of building and fingerprinting a new statement (a visible share of the
    page's CPU)."""
    matches = [Product.active.is_(True)]
    if searching:
        matches.append(Product.name.ilike(bindparam("pattern"), escape="\\"))
    # The number of matches as a subquery PostgreSQL runs once, not count(*) over (): a window
    # would read every match through the index (24 ms for 20,000 products, against 3 ms).
    total = select(func.count()).select_from(Product).where(*matches).scalar_subquery().label("total")
    columns: list = [Product, total]
    if with_cart:
        columns.append(count_statement(bindparam("cart_user")).scalar_subquery().label("cart_count"))
    statement = select(*columns).where(*matches).order_by(Product.name, Product.id)
    return statement.limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer))


_STATEMENTS = {
    (searching, with_cart): _catalogue_statement(searching=searching, with_cart=with_cart)
    for searching in (False, True)
    for with_cart in (False, True)
}


def search(query: str = "", page: int = 1, per_page: int = PER_PAGE, *, cart_of: int | None = None) -> CataloguePage:
    """Active products whose name contains `query` (case-insensitive), by name, one page.

    One query: every row carries the number of matches, for "page 1 of 3".
    With `cart_of` (a user id), the same round trip also brings that shopper's cart count for
    the header, so a signed-in catalogue costs no extra query for it.
    """
    query = query.strip()[:MAX_QUERY_LENGTH]
    page = min(max(page, 1), MAX_PAGE)
    params: dict[str, int | str] = {"limit": per_page, "offset": (page - 1) * per_page}
    if query:
        params["pattern"] = f"%{escape_like(query)}%"
    if cart_of is not None:
        params["cart_user"] = cart_of
    rows = db.session.execute(_STATEMENTS[bool(query), cart_of is not None], params).all()
    cart_count = rows[0].cart_count if rows and cart_of is not None else None
    if rows:
        total = rows[0].total
    elif page > 1:  # past the last page: the first page's first row carries the count
        first = db.session.execute(_STATEMENTS[bool(query), False], {**params, "offset": 0, "limit": 1}).first()
        total = first.total if first else 0
    else:
        total = 0
    return CataloguePage(
        products=[row[0] for row in rows], page=page, total=total, per_page=per_page, query=query, cart_count=cart_count
    )


def active_product(slug: str) -> Product | None:
    return db.session.scalar(select(Product).where(Product.slug == slug, Product.active.is_(True)))


# --- the staff's changes ------------------------------------------------------------------------------


class ProductError(Exception):
    """A change to a product that cannot be made; the message is for the form."""


class StockChanged(ProductError):
    """The stock moved (an order, a cancellation) since the form was opened."""


def slug_taken(slug: str, except_id: int | None = None) -> bool:
    statement = select(Product.id).where(Product.slug == slug)
    if except_id is not None:
        statement = statement.where(Product.id != except_id)
    return db.session.scalar(statement) is not None


@dataclass(frozen=True, slots=True)
class ProductFields:
    """A product's columns as staff set them (the admin's ProductForm makes one)."""

    slug: str
    name: str
    description: str
    price_cents: int
    currency: str
    stock: int
    active: bool
    image: str | None
    low_stock_threshold: int = LOW_STOCK_THRESHOLD


def create_product(fields: ProductFields, *, by: str, image: PreparedImage | None = None) -> Product:
    """A new product; with `image`, the upload it shows (stored in the same transaction)."""
    if slug_taken(fields.slug):
        raise ProductError(f"Slug: another product already uses {fields.slug!r}.")
    product = Product(**asdict(fields), image_sha256=_store_image(image) if image else None)
    db.session.add(product)
    db.session.commit()
    log.info("product %s (%s) created by %s", product.id, fields.slug, by)
    return product


def update_product(
    product_id: int,
    fields: ProductFields,
    *,
    seen_stock: int,
    by: str,
    image: PreparedImage | None = None,
    remove_image: bool = False,
) -> Product:
    """Save the form. Stock is written only if it is still what the form showed (`seen_stock`):
    an order placed meanwhile is never silently undone by an older number. `image` replaces the
    uploaded image, `remove_image` takes it away (the path in `fields.image`, or the placeholder, is
    shown again); neither keeps the one there was."""
    if slug_taken(fields.slug, except_id=product_id):
        raise ProductError(f"Slug: another product already uses {fields.slug!r}.")
    values: dict[str, object] = asdict(fields)
    if fields.stock == seen_stock:
        del values["stock"]  # unchanged: never written, so an order placed meanwhile keeps its take
    replaced = None
    if image is not None or remove_image:
        replaced = db.session.scalar(select(Product.image_sha256).where(Product.id == product_id))
        values["image_sha256"] = _store_image(image) if image else None
    row = db.session.execute(
        update(Product)
        .where(Product.id == product_id, Product.stock == seen_stock)
        .values(**values)
        .returning(Product.id)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        current = db.session.scalar(select(Product.stock).where(Product.id == product_id))
        db.session.rollback()
        if current is None:
            raise ProductError("This product does not exist.")
        raise StockChanged(
            f"The stock changed to {current} while you were editing (an order or a cancellation); "
            "nothing was saved. Check the form and save again."
        )
    crossed = stock_alerts.note_crossings([(product_id, seen_stock - fields.stock)])  # in this save's transaction
    db.session.commit()
    if crossed:
        outbox.kick()  # the low-stock e-mails, now that they are committed
    log.info("product %s (%s) updated by %s", product_id, fields.slug, by)
    if replaced is not None and replaced != values["image_sha256"]:
        _forget_image(replaced)
    return db.session.get_one(Product, product_id, populate_existing=True)  # just updated; never deleted


def set_stock(product_id: int, stock: int, *, seen_stock: int, by: str) -> None:
    row = db.session.execute(
        update(Product)
        .where(Product.id == product_id, Product.stock == seen_stock)
        .values(stock=stock)
        .returning(Product.slug)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        current = db.session.scalar(select(Product.stock).where(Product.id == product_id))
        db.session.rollback()
        if current is None:
            raise ProductError("This product does not exist.")
        raise StockChanged(f"The stock changed to {current} meanwhile; nothing was saved. Try again.")
    crossed = stock_alerts.note_crossings([(product_id, seen_stock - stock)])  # in this save's transaction
    db.session.commit()
    if crossed:
        outbox.kick()  # the low-stock e-mails, now that they are committed
    log.info("stock of product %s (%s) set from %s to %s by %s", product_id, row.slug, seen_stock, stock, by)


def set_active(product_id: int, active: bool, *, by: str) -> Product:
    product = db.session.get(Product, product_id)
    if product is None:
        raise ProductError("This product does not exist.")
    product.active = active
    db.session.commit()
    log.info("product %s (%s) %s by %s", product_id, product.slug, "activated" if active else "deactivated", by)
    return product


# --- uploaded images ------------------------------------------------------------------------------------


def _store_image(image: PreparedImage) -> str:
    """Keep `image` (in the caller's transaction) and return its name. The same bytes uploaded again,
    for this product or another, find the row already there."""
    db.session.execute(
        insert(ProductImage)
        .values(
            sha256=image.sha256,
            content_type=image.content_type,
            width=image.width,
            height=image.height,
            data=image.data,
        )
        .on_conflict_do_nothing(index_elements=[ProductImage.sha256])
    )
    return image.sha256


def _forget_image(sha256: str) -> None:
    """Delete an image no product shows any more, after the change that let go of it was committed.
    Best effort: if another product took it up meanwhile, its foreign key refuses the delete and the
    image stays (and a row left over costs only its bytes)."""
    try:
        db.session.execute(
            delete(ProductImage).where(ProductImage.sha256 == sha256, ~exists().where(Product.image_sha256 == sha256))
        )
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        log.info("image %s kept: a product took it up while it was being removed", sha256)


def uploaded_image(sha256: str) -> ProductImage | None:
    """The image stored under `sha256` (any text: a name that is not a SHA-256 finds nothing)."""
    if not SHA256_HEX.fullmatch(sha256):
        return None
    return db.session.get(ProductImage, sha256)
