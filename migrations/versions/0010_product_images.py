"""Product images uploaded by staff, stored in PostgreSQL

Revision ID: 0010_product_images
Revises: 0009_revoked_sessions
Create Date: 2026-12-07 14:30:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0010_product_images"
down_revision = "0009_revoked_sessions"
branch_labels = None
depends_on = None


def upgrade():
    pass  # placeholder: filled in by the change that needs it, or removed


def downgrade():
    pass
