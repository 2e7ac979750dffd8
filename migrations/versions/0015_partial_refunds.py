"""Partial refunds: one row per refund staff asked for

Revision ID: 0015_partial_refunds
Revises: 0014_shipping_and_charges
Create Date: 2026-12-07 15:00:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "0015_partial_refunds"
down_revision = "0014_shipping_and_charges"
branch_labels = None
depends_on = None


def upgrade():
    # A refund of part of an order (lines or an amount), decided under the order's lock before Stripe is
    # asked (shop.store.refunds): its row is what makes two staff at once unable to refund more than is
    # left, and its key the idempotency key every asker of that refund derives. A whole-order refund (a
    # cancel) stays the order's own `refund_requests` / `stripe_refund_id`.
    op.create_table(
        "refunds",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.BigInteger(), sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("stripe_refund_id", sa.String(length=255), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        # {"<order_items.id>": quantity} of the lines refunded; {} for a refund of an amount.
        sa.Column("lines", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("restock", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="requested", nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount_cents > 0", name="ck_refunds_amount_positive"),
        sa.CheckConstraint("status IN ('requested', 'succeeded', 'failed')", name="ck_refunds_status"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stripe_refund_id", name="uq_refunds_stripe_refund_id"),
        sa.UniqueConstraint("order_id", "key", name="uq_refunds_order_key"),
    )
    op.create_index("ix_refunds_order_id", "refunds", ["order_id"])


def downgrade():
    op.drop_index("ix_refunds_order_id", table_name="refunds")
    op.drop_table("refunds")
