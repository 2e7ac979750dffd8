"""Payment attempts: a new Checkout Session per Pay now

Revision ID: 0012_payment_attempts
Revises: 0011_order_tracking
Create Date: 2026-12-07 14:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012_payment_attempts"
down_revision = "0011_order_tracking"
branch_labels = None
depends_on = None


def upgrade():
    # Constant defaults: PostgreSQL adds both columns without rewriting the table. Every existing order
    # is on its first attempt (its session carries no attempt in its metadata, which reads as 1).
    op.add_column("orders", sa.Column("payment_attempts", sa.Integer(), server_default=sa.text("1"), nullable=False))
    op.add_column(
        "orders", sa.Column("payment_processing", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.create_check_constraint("ck_orders_payment_attempts_positive", "orders", "payment_attempts >= 1")


def downgrade():
    op.drop_constraint("ck_orders_payment_attempts_positive", "orders", type_="check")
    op.drop_column("orders", "payment_processing")
    op.drop_column("orders", "payment_attempts")
