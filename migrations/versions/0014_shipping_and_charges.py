"""Selling for real: shipping rates, the order's chosen rate, and what Stripe charged, part by part

Revision ID: 0014_shipping_and_charges
Revises: 0013_stock_alerts
Create Date: 2026-12-07 15:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0014_shipping_and_charges"
down_revision = "0013_stock_alerts"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "shipping_rates",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("delivery_estimate", sa.String(length=80), nullable=True),
        sa.Column("free_above_cents", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("price_cents >= 0", name="ck_shipping_rates_price_not_negative"),
        sa.CheckConstraint("free_above_cents IS NULL OR free_above_cents >= 0", name="ck_shipping_rates_free_above"),
        sa.PrimaryKeyConstraint("id"),
    )
    # The rate the shopper chose, copied as it was (a later edit of the rate changes no order).
    op.add_column(
        "orders",
        sa.Column("shipping_rate_id", sa.BigInteger(), sa.ForeignKey("shipping_rates.id", ondelete="SET NULL")),
    )
    op.add_column("orders", sa.Column("shipping_rate_name", sa.Text(), nullable=True))
    op.add_column("orders", sa.Column("shipping_cents", sa.Integer(), server_default=sa.text("0"), nullable=False))
    # What Stripe charged, part by part (the session's amount_subtotal, total_details, amount_total is
    # charged_total_cents already), recorded when the payment is accepted; NULL until then.
    op.add_column("orders", sa.Column("charged_subtotal_cents", sa.Integer(), nullable=True))
    op.add_column("orders", sa.Column("charged_discount_cents", sa.Integer(), nullable=True))
    op.add_column("orders", sa.Column("charged_shipping_cents", sa.Integer(), nullable=True))
    op.add_column("orders", sa.Column("charged_tax_cents", sa.Integer(), nullable=True))
    # Refunded so far (every refund Stripe confirmed, partial or whole).
    op.add_column("orders", sa.Column("refunded_cents", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.create_check_constraint("ck_orders_shipping_not_negative", "orders", "shipping_cents >= 0")
    op.create_check_constraint("ck_orders_refunded_not_negative", "orders", "refunded_cents >= 0")


def downgrade():
    op.drop_constraint("ck_orders_refunded_not_negative", "orders", type_="check")
    op.drop_constraint("ck_orders_shipping_not_negative", "orders", type_="check")
    for column in (
        "refunded_cents",
        "charged_tax_cents",
        "charged_shipping_cents",
        "charged_discount_cents",
        "charged_subtotal_cents",
        "shipping_cents",
        "shipping_rate_name",
        "shipping_rate_id",
    ):
        op.drop_column("orders", column)
    op.drop_table("shipping_rates")
