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
    pass  # placeholder: filled in by the change that needs it, or removed


def downgrade():
    pass
