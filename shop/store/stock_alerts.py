"""Low stock: the products at or below their threshold (the admin dashboard), and one e-mail to staff each
time a product's stock falls through its threshold.

A crossing is one statement's fall of the stock from above `low_stock_threshold` to at or below it. The
caller (checkout, the admin's stock edits) has just changed the stock with an UPDATE, in its open
transaction, and tells `note_crossings` how many units each product lost; the stock before was the stock
now plus those units, so no flag has to be kept in step with every path that adds stock back (a cancel,
an expiry, a restock): any fall from above the threshold is a crossing again, which is how a restock
re-arms the alert. Two checkouts taking the last units at once are served one after the other on the
row's lock (the first UPDATE holds it until its commit), so exactly one of them sees the fall through the
threshold. Each crossing bumps `low_stock_alerts`, and its e-mails are named by it: one per crossing and
recipient, whatever retries write.

Who is told: every live ADMIN user of the mirror, each at their own address. Staff are the people who can
restock (they are the ones the admin pages are for), the list follows `flask users`/`make admin` without
a restart or a setting to keep in step, and the mirror holds Clerk's verified addresses. A shop that
wants a shared inbox makes that inbox's account an admin.

The mail is written in the caller's transaction (a rolled-back checkout sends nothing); the caller sends
it right after its commit (`outbox.kick`) when a product crossed, or `flask mail send-pending` does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from flask import render_template
from sqlalchemy import BigInteger, Integer, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from shop.extensions import db
from shop.mail import outbox
from shop.models import Role, User
from shop.store import order_mail
from shop.store.models import Product

log = logging.getLogger(__name__)

STOCK_LOW = "stock_low"  # the mail's kind, and its template: templates/mail/stock_low.txt
DASHBOARD_LIMIT = 50  # the emptiest; a shop with more low products than that has one list to read first


# Every product whose stock the caller's statement took from above its threshold to at or below it, counted.
# One statement for all of a checkout's lines, with the same text whatever their number (arrays, unnested side
# by side), so SQLAlchemy compiles it once: it runs on every checkout.
_FALLS = select(
    func.unnest(bindparam("ids", type_=ARRAY(BigInteger))).label("product_id"),
    func.unnest(bindparam("units", type_=ARRAY(Integer))).label("units"),
).subquery("falls")
_CROSSED = (
    update(Product)
    .where(
        Product.id == _FALLS.c.product_id,
        Product.active.is_(True),
        Product.stock <= Product.low_stock_threshold,
        Product.stock + _FALLS.c.units > Product.low_stock_threshold,
    )
    .values(low_stock_alerts=Product.low_stock_alerts + 1)
    .returning(Product.id, Product.name, Product.stock, Product.low_stock_threshold, Product.low_stock_alerts)
    .execution_options(synchronize_session=False)
)


def dedup_key(product_id: int, crossing: int, user_id: int) -> str:
    return f"product-{product_id}.{STOCK_LOW}-{crossing}.user-{user_id}"


def note_crossings(taken: Iterable[Sequence[int]]) -> int:
    """After the caller's UPDATE took `units` off each `(product_id, units)` (negative: added), in its open
    transaction: count a crossing for every active product whose stock fell from above its threshold to at
    or below it, and write its e-mail to each admin. No commit. Returns how many products crossed: when
    any did, the caller kicks the outbox after its commit."""
    falls = [(int(product_id), int(units)) for product_id, units in taken if units > 0]
    if not falls:
        return 0
    ids, units = zip(*falls, strict=True)
    crossed = db.session.execute(_CROSSED, {"ids": list(ids), "units": list(units)}).all()
    if not crossed:
        return 0
    staff = db.session.execute(
        select(User.id, User.email, User.first_name)
        .where(
            User.role == Role.ADMIN,
            User.deleted_at.is_(None),
            User.banned.is_(False),
            User.email.is_not(None),
        )
        .order_by(User.id)
    ).all()
    written = 0
    for product in crossed:
        log.info(
            "product %s low on stock: %s left, threshold %s (crossing %s)",
            product.id,
            product.stock,
            product.low_stock_threshold,
            product.low_stock_alerts,
        )
        for person in staff:
            written += _enqueue(product, person)
    if not written and not staff:
        log.warning("product %s is low on stock and no admin has an e-mail address to be told", crossed[0].id)
    return len(crossed)


def _enqueue(product: Any, person: Any) -> int:
    body = render_template(
        f"mail/{STOCK_LOW}.txt",
        product=product,
        greeting_name=person.first_name,
        product_url=order_mail.page_url("admin.product_edit", product_id=product.id),
    )
    message = outbox.Message(
        to=person.email,
        subject=f"Low stock: {product.name} ({product.stock} left)",
        body=body,
        kind=STOCK_LOW,
        dedup_key=dedup_key(product.id, product.low_stock_alerts, person.id),
    )
    return int(outbox.enqueue(db.session, message))


def low_stock(limit: int = DASHBOARD_LIMIT) -> tuple[list[Product], bool]:
    """Active products at or below their threshold, the emptiest first, at most `limit` (the dashboard's
    list); and whether more are low."""
    found = list(
        db.session.scalars(
            select(Product)
            .where(Product.active.is_(True), Product.stock <= Product.low_stock_threshold)
            .order_by(Product.stock, Product.name, Product.id)
            .limit(limit + 1)
        )
    )
    return found[:limit], len(found) > limit
