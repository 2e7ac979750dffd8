"""Refunds that failed, and the newest charge.refunded an order was told: what is refunded, whatever order Stripe's events come in

Revision ID: 0016_failed_refunds
Revises: 0015_partial_refunds
Create Date: 2026-12-07 20:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0016_failed_refunds"
down_revision = "0015_partial_refunds"
branch_labels = None
depends_on = None


def upgrade():
    # The charge's amount_refunded in the newest charge.refunded, and that event's time. An order refunded
    # before this migration keeps its figure with no time: it was worked out the old way, each failure
    # already taken off (shop.payments.stripe_refunds treats a missing time so).
    op.add_column(
        "orders", sa.Column("stripe_refunded_cents", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("orders", sa.Column("stripe_refunded_as_of", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE orders SET stripe_refunded_cents = refunded_cents WHERE refunded_cents <> 0")  # few rows
    # One row per refund Stripe could not make: its amount, when it was created and when it failed.
    op.create_table(
        "failed_refunds",
        sa.Column("stripe_refund_id", sa.String(length=255), nullable=False),
        sa.Column("order_id", sa.BigInteger(), sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("refund_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount_cents >= 0", name="ck_failed_refunds_amount_not_negative"),
        sa.PrimaryKeyConstraint("stripe_refund_id"),
    )
    op.create_index("ix_failed_refunds_order_id", "failed_refunds", ["order_id"])


def downgrade():
    op.drop_index("ix_failed_refunds_order_id", table_name="failed_refunds")
    op.drop_table("failed_refunds")
    op.drop_column("orders", "stripe_refunded_as_of")
    op.drop_column("orders", "stripe_refunded_cents")
