"""Revoked sessions: Clerk session ids whose tokens are refused on the next request

Revision ID: 0009_revoked_sessions
Revises: 0008_whole_user
Create Date: 2026-12-15 05:00:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0009_revoked_sessions"
down_revision = "0008_whole_user"
branch_labels = None
depends_on = None


def upgrade():
    # One row per session Clerk revoked, ended or removed (shop/revoked_sessions.py), kept a day past
    # the session's end and pruned in batches by the next revocation: about a day of revocations.
    op.create_table(
        "revoked_sessions",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("clerk_user_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("keep_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_index("ix_revoked_sessions_keep_until", "revoked_sessions", ["keep_until"])


def downgrade():
    op.drop_index("ix_revoked_sessions_keep_until", table_name="revoked_sessions")
    op.drop_table("revoked_sessions")
