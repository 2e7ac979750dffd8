"""Tracking number given by staff when an order ships

Revision ID: 0011_order_tracking
Revises: 0010_product_images
Create Date: 2026-12-07 14:30:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0011_order_tracking"
down_revision = "0010_product_images"
branch_labels = None
depends_on = None


def upgrade():
    # Nullable, no default: adding it rewrites nothing (a catalogue change in PostgreSQL only), so it is
    # instant on a full orders table. The admin's form decides what a tracking number may be.
    op.add_column("orders", sa.Column("tracking_number", sa.String(length=40), nullable=True))


def downgrade():
    op.drop_column("orders", "tracking_number")
