"""Partial refunds: one row per refund staff asked for

Revision ID: 0015_partial_refunds
Revises: 0014_shipping_and_charges
Create Date: 2026-12-07 15:00:00

"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = "0015_partial_refunds"
down_revision = "0014_shipping_and_charges"
branch_labels = None
depends_on = None


def upgrade():
    pass  # placeholder: filled in by the partial refunds


def downgrade():
    pass
