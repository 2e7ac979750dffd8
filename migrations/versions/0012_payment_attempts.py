"""Payment attempts: a new Checkout Session per Pay now

Revision ID: 0012_payment_attempts
Revises: 0011_order_tracking
Create Date: 2026-12-07 14:30:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0012_payment_attempts"
down_revision = "0011_order_tracking"
branch_labels = None
depends_on = None


def upgrade():
    pass  # placeholder: filled in by the change that needs it, or removed


def downgrade():
    pass
