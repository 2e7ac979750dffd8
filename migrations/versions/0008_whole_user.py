"""The whole Clerk user: metadata, phone, marketing opt-in, bans and locks

Revision ID: 0008_whole_user
Revises: 0007_mail_dedup_key
Create Date: 2026-12-15 04:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '0008_whole_user'
down_revision = '0007_mail_dedup_key'
branch_labels = None
depends_on = None


def upgrade():
    # NULL metadata: Clerk sent something the mirror refuses to keep (not an object, over 8 KB);
    # rows written before this revision hold {} until their next update or sync.
    for name in ('public_metadata', 'private_metadata', 'unsafe_metadata'):
        op.add_column('users', sa.Column(name, postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=True))
    op.add_column('users', sa.Column('phone', sa.Text(), nullable=True))
    op.add_column('users', sa.Column('marketing_opt_in', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.add_column('users', sa.Column('banned', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.add_column('users', sa.Column('locked', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    # docs/sync.md's query: `public_metadata @> '{"plan": "pro"}'` (containment, jsonb_path_ops).
    op.create_index(
        'ix_users_public_metadata', 'users', ['public_metadata'],
        postgresql_using='gin', postgresql_ops={'public_metadata': 'jsonb_path_ops'},
    )
    # The admin's "opted in" filter: the live users who said yes, newest first.
    op.create_index(
        'ix_users_marketing_opt_in', 'users', ['created_at'],
        postgresql_where=sa.text('marketing_opt_in AND deleted_at IS NULL'),
    )


def downgrade():
    op.drop_index('ix_users_marketing_opt_in', table_name='users')
    op.drop_index('ix_users_public_metadata', table_name='users')
    for name in ('locked', 'banned', 'marketing_opt_in', 'phone', 'unsafe_metadata', 'private_metadata', 'public_metadata'):
        op.drop_column('users', name)
