"""Low-stock alerts: a threshold per product, and a count of its crossings

Revision ID: 0013_stock_alerts
Revises: 0012_payment_attempts
Create Date: 2026-12-08 10:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0013_stock_alerts"
down_revision = "0012_payment_attempts"
branch_labels = None
depends_on = None


def upgrade():
    # Constant defaults: PostgreSQL adds both columns without rewriting the table. Every existing product
    # gets the default threshold (3) and no crossing yet: one already low is listed on the dashboard, and
    # mailed the next time its stock falls through its threshold after a restock.
    op.add_column(
        "products", sa.Column("low_stock_threshold", sa.Integer(), server_default=sa.text("3"), nullable=False)
    )
    op.add_column("products", sa.Column("low_stock_alerts", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.create_check_constraint("ck_products_low_stock_threshold_not_negative", "products", "low_stock_threshold >= 0")


def downgrade():
    op.drop_constraint("ck_products_low_stock_threshold_not_negative", "products", type_="check")
    op.drop_column("products", "low_stock_alerts")
    op.drop_column("products", "low_stock_threshold")
