"""The storefront's tables: products, product_images, carts, cart_items, orders, order_items.

Money is an integer number of cents plus a currency code. Carts and orders reference the
mirrored `users` row by foreign key; an order keeps the e-mail it was placed with, and its
lines keep the product's name and unit price at order time, so neither a tombstone nor a
later price change alters what was ordered.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.extensions import Model
from shop.models import User

TRACKING_NUMBER_LENGTH = 40  # carriers' numbers run to about 35 characters (USPS's longest is 34)
LOW_STOCK_THRESHOLD = 3  # a product's default alert threshold (staff change it on the product's form)


class OrderStatus(enum.StrEnum):
    PLACED = "placed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class PaymentStatus(enum.StrEnum):
    """Money, apart from fulfilment: an order is shipped only once it is `paid`."""

    PENDING = "pending"  # a Checkout Session is open (or being created); the order holds its stock
    PAID = "paid"
    FAILED = "failed"  # the session expired or the payment failed; the stock went back
    REFUND_PENDING = "refund_pending"  # a refund was asked of Stripe; its webhook confirms it
    REFUNDED = "refunded"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class ProductImage(Model):
    """An image staff uploaded for products, as shop.images.prepare_upload re-encoded it, named by the
    SHA-256 of its bytes (the URL it is served at, and its ETag: the same bytes are one row). Kept in
    PostgreSQL rather than on a disk: every instance of a deployment reads the same database, so no
    shared directory or object store is needed, and backups already hold it."""

    __tablename__ = "product_images"

    sha256: Mapped[str] = mapped_column(CHAR(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="ck_product_images_sha256_hex"),
        CheckConstraint(
            "content_type IN ('image/png', 'image/jpeg', 'image/webp')", name="ck_product_images_content_type"
        ),
        # shop.images.UPLOAD_MAX_BYTES: what the form accepts is also all the column holds.
        CheckConstraint("octet_length(data) BETWEEN 1 AND 5242880", name="ck_product_images_size"),
    )


class Product(Model):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    price_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(CHAR(3), default="EUR", server_default="EUR")
    stock: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    # A path under static/, such as "products/ceramic-mug.svg" (None: a placeholder is shown).
    image: Mapped[str | None] = mapped_column(Text)
    # An image staff uploaded (shown instead of `image`): its row in product_images.
    image_sha256: Mapped[str | None] = mapped_column(ForeignKey("product_images.sha256"), index=True)
    # Stock at or below this is low: the admin dashboard lists the product, and staff get one e-mail each
    # time the stock falls from above it to at or below it (shop.store.stock_alerts).
    low_stock_threshold: Mapped[int] = mapped_column(
        Integer, default=LOW_STOCK_THRESHOLD, server_default=text(str(LOW_STOCK_THRESHOLD))
    )
    # How many times the stock crossed the threshold downwards: each crossing's e-mail is named by it, so
    # two checkouts taking the last units at once (served one after the other on the row's lock) send one.
    low_stock_alerts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint("stock >= 0", name="ck_products_stock_not_negative"),
        CheckConstraint("low_stock_threshold >= 0", name="ck_products_low_stock_threshold_not_negative"),
        CheckConstraint("price_cents >= 0", name="ck_products_price_not_negative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_products_currency_code"),
        # The catalogue: active products by name, one page at a time.
        Index("ix_products_active_name", "active", "name"),
    )


class Cart(Model):
    """One per user; its lines go with it (a tombstoned user's cart is deleted: shop.store.erasure)."""

    __tablename__ = "carts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class CartItem(Model):
    __tablename__ = "cart_items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("carts.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("cart_id", "product_id", name="uq_cart_items_cart_product"),
        CheckConstraint("quantity > 0", name="ck_cart_items_quantity_positive"),
    )


class ShippingRate(Model):
    """A way to ship that staff offer (name, price, delivery estimate; free above an order total if set)."""

    __tablename__ = "shipping_rates"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    price_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(CHAR(3))
    delivery_estimate: Mapped[str | None] = mapped_column(String(80))
    free_above_cents: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="ck_shipping_rates_price_not_negative"),
        CheckConstraint("free_above_cents IS NULL OR free_above_cents >= 0", name="ck_shipping_rates_free_above"),
    )


class Order(Model):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # RESTRICT: users are tombstoned, never deleted, so orders always keep their customer.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    email: Mapped[str | None] = mapped_column(Text)  # as it was when the order was placed
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.PLACED, server_default=OrderStatus.PLACED)
    total_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(CHAR(3))
    # From the checkout form: a double submit finds the first order instead of placing a second.
    idempotency_key: Mapped[str] = mapped_column(String(64))
    payment_status: Mapped[str] = mapped_column(
        String(16), default=PaymentStatus.PENDING, server_default=PaymentStatus.PENDING
    )
    # True while the order's quantities are taken from stock; the one flag that makes "give the
    # stock back" happen once, whichever of expiry, failure, cancel or the sweep comes first.
    holds_stock: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_checkout_url: Mapped[str | None] = mapped_column(Text)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    payment_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What Stripe charged (the session's amount_total), recorded when the payment is accepted.
    charged_total_cents: Mapped[int | None] = mapped_column(Integer)
    # ... and part by part, from the same session (amount_subtotal, total_details.amount_discount,
    # amount_shipping, amount_tax): shown to the shopper and staff, and exported for the books.
    charged_subtotal_cents: Mapped[int | None] = mapped_column(Integer)
    charged_discount_cents: Mapped[int | None] = mapped_column(Integer)
    charged_shipping_cents: Mapped[int | None] = mapped_column(Integer)
    charged_tax_cents: Mapped[int | None] = mapped_column(Integer)
    # Refunded so far: every refund Stripe confirmed, partial or whole, less those that failed
    # (shop.payments.stripe_refunds works it out from the two below and the order's failed_refunds).
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The charge's amount_refunded in the newest charge.refunded event, and that event's time (None: no
    # event yet, or one recorded before the time was kept).
    stripe_refunded_cents: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    stripe_refunded_as_of: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The shipping rate the shopper chose, copied as it was: a later edit of the rate changes no order.
    shipping_rate_id: Mapped[int | None] = mapped_column(ForeignKey("shipping_rates.id", ondelete="SET NULL"))
    shipping_rate_name: Mapped[str | None] = mapped_column(Text)
    shipping_cents: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Why an event about this order's money was refused (a session that did not charge what the order
    # asked): shown to staff on the order's page until they have looked into it at Stripe.
    payment_warning: Mapped[str | None] = mapped_column(Text)
    # Refunds asked so far (shop.store.lifecycle counts them): part of each refund's idempotency key.
    refund_requests: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Stripe's id of the refund last asked for; None while it has not been accepted (the sweep asks again).
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255))
    # Which payment attempt the order is on: each *Pay now* starts a new Checkout Session with a key and
    # metadata of its own attempt (shop.payments.checkout), and only that attempt's session can fail the order.
    payment_attempts: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    # The current session was completed with a method that settles later (a bank debit): nothing to pay
    # any more, the money is on its way (or its failure is).
    payment_processing: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # The shipping address as it was at checkout: later edits of the address book change no order.
    ship_name: Mapped[str | None] = mapped_column(Text)
    ship_line1: Mapped[str | None] = mapped_column(Text)
    ship_line2: Mapped[str | None] = mapped_column(Text)
    ship_postal_code: Mapped[str | None] = mapped_column(Text)
    ship_city: Mapped[str | None] = mapped_column(Text)
    ship_country: Mapped[str | None] = mapped_column(CHAR(2))
    # The carrier's tracking number staff gave when shipping (optional): in the "shipped" e-mail and on both
    # order pages. Checked by the admin's form (TRACKING_NUMBER); the column's bound backs it.
    tracking_number: Mapped[str | None] = mapped_column(String(TRACKING_NUMBER_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    user: Mapped[User] = relationship()
    checkout_sessions: Mapped[list[CheckoutSession]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="CheckoutSession.created_at"
    )
    items: Mapped[list[OrderItem]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="OrderItem.id"
    )

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_idempotency_key"),
        CheckConstraint("status IN ('placed', 'shipped', 'delivered', 'cancelled')", name="ck_orders_status"),
        CheckConstraint("total_cents >= 0", name="ck_orders_total_not_negative"),
        CheckConstraint("shipping_cents >= 0", name="ck_orders_shipping_not_negative"),
        CheckConstraint("refunded_cents >= 0", name="ck_orders_refunded_not_negative"),
        CheckConstraint(
            "payment_status IN ('pending', 'paid', 'failed', 'refund_pending', 'refunded')",
            name="ck_orders_payment_status",
        ),
        CheckConstraint("payment_attempts >= 1", name="ck_orders_payment_attempts_positive"),
        # "All orders of user X", newest first: an index range scan, read backwards.
        Index("ix_orders_user_id_created_at", "user_id", "created_at"),
        # The staff's list, filtered by status, newest first.
        Index("ix_orders_status_created_at", "status", "created_at"),
    )

    @property
    def lines_cents(self) -> int:
        """What the order's lines cost: its total without shipping (Stripe's `amount_subtotal`)."""
        return self.total_cents - self.shipping_cents

    @property
    def payment_status_enum(self) -> PaymentStatus:
        return PaymentStatus(self.payment_status)

    @property
    def charged_rows(self) -> list[tuple[str, int]]:
        """What Stripe charged, row by row, for pages and e-mails: Subtotal, Discount (if any), Shipping,
        Tax (if any), Total, Refunded so far (if any). An order paid before the breakdown was recorded
        (or by a session of the older shape) shows the parts it has; an unpaid one, none."""
        if self.charged_total_cents is None:
            return []
        rows: list[tuple[str, int]] = []
        if self.charged_subtotal_cents is not None:
            rows.append(("Subtotal", self.charged_subtotal_cents))
        if self.charged_discount_cents:
            rows.append(("Discount", -self.charged_discount_cents))
        if self.charged_shipping_cents is not None:
            rows.append(
                (
                    "Shipping" + (f" ({self.shipping_rate_name})" if self.shipping_rate_name else ""),
                    self.charged_shipping_cents,
                )
            )
        if self.charged_tax_cents:
            rows.append(("Tax", self.charged_tax_cents))
        rows.append(("Total", self.charged_total_cents))
        if self.refunded_cents:
            rows.append(("Refunded so far", -self.refunded_cents))
        return rows

    @property
    def shipping_lines(self) -> list[str]:
        """The copied address, line by line, for pages and e-mails (empty for orders from before addresses)."""
        city = " ".join(part for part in (self.ship_postal_code, self.ship_city) if part)
        parts = (self.ship_name, self.ship_line1, self.ship_line2, city, self.ship_country)
        return [part for part in parts if part]


class CheckoutSession(Model):
    """Every Stripe Checkout Session an order created: an event naming any of them is about that order
    (the order's `stripe_checkout_session_id` is the newest, the one its *Pay now* opens)."""

    __tablename__ = "checkout_sessions"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's cs_… id
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FailedRefund(Model):
    """A refund Stripe could not make (refund.failed), whoever asked for it: staff's partial refund, a
    cancel's whole one, or one made in Stripe's dashboard. Its times say which charge.refunded events
    counted it: those from after it was created and before it failed (shop.payments.stripe_refunds)."""

    __tablename__ = "failed_refunds"

    stripe_refund_id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's re_… id
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    refund_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the refund's `created`
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the refund.failed event's `created`

    __table_args__ = (CheckConstraint("amount_cents >= 0", name="ck_failed_refunds_amount_not_negative"),)


class RefundStatus(enum.StrEnum):
    REQUESTED = "requested"  # decided under the order's lock; Stripe not (yet) asked, or not answered
    SUCCEEDED = "succeeded"  # Stripe accepted it
    FAILED = "failed"  # Stripe's refund.failed: the money is ours again


class Refund(Model):
    """A refund of part of an order that staff asked for (shop.store.refunds): chosen lines or an amount."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))  # the suffix of its Stripe idempotency key
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    # {"<order_items.id>": quantity}: the lines refunded ({} for a refund of an amount).
    lines: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    restock: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    status: Mapped[str] = mapped_column(
        String(16), default=RefundStatus.REQUESTED, server_default=RefundStatus.REQUESTED
    )
    requested_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("order_id", "key", name="uq_refunds_order_key"),
        CheckConstraint("amount_cents > 0", name="ck_refunds_amount_positive"),
        CheckConstraint("status IN ('requested', 'succeeded', 'failed')", name="ck_refunds_status"),
    )


class OrderItem(Model):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    # SET NULL: the line keeps its copied name and price even if a product row is ever removed.
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"))
    product_name: Mapped[str] = mapped_column(String(120))
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint("quantity > 0", name="ck_order_items_quantity_positive"),
        CheckConstraint("unit_price_cents >= 0", name="ck_order_items_price_not_negative"),
    )

    @property
    def line_total_cents(self) -> int:
        return self.unit_price_cents * self.quantity


class Address(Model):
    """One entry of a shopper's address book. Erased with the rest of a tombstoned user's personal
    data (shop.mirror); orders keep their own copy."""

    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    line1: Mapped[str] = mapped_column(Text)
    line2: Mapped[str | None] = mapped_column(Text)
    postal_code: Mapped[str] = mapped_column(Text)
    city: Mapped[str] = mapped_column(Text)
    country: Mapped[str] = mapped_column(CHAR(2))  # ISO 3166-1 alpha-2, as Stripe writes it
    is_default: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        Index("ix_addresses_user_id", "user_id"),
        # At most one default per user.
        Index("uq_addresses_user_default", "user_id", unique=True, postgresql_where=text("is_default")),
        CheckConstraint("country ~ '^[A-Z]{2}$'", name="ck_addresses_country_code"),
    )

    @property
    def lines(self) -> list[str]:
        city = f"{self.postal_code} {self.city}"
        return [part for part in (self.name, self.line1, self.line2, city, self.country) if part]
