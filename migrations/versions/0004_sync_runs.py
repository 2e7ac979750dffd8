"""The mirror's own health record: sync_runs (one row per real sync) and users.provisioned_at

`/metrics` and the admin dashboard read the last sync's time, result and drift from sync_runs,
so every worker and every restart sees the same figures. `users.provisioned_at` marks the rows
that a first sign-in created because the user's webhook had not arrived yet.

Revision ID: 0004_sync_runs
Revises: 0003_email_key
Create Date: 2026-11-29 14:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004_sync_runs'
down_revision = '0003_email_key'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sync_runs',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('clerk_count', sa.Integer(), nullable=True),
    sa.Column('listed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated', sa.Integer(), server_default='0', nullable=False),
    sa.Column('tombstoned', sa.Integer(), server_default='0', nullable=False),
    sa.Column('failed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sync_runs_finished_at', 'sync_runs', ['finished_at'], unique=False)
    op.add_column('users', sa.Column('provisioned_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_users_provisioned_at', 'users', ['provisioned_at'], unique=False,
                    postgresql_where=sa.text('provisioned_at IS NOT NULL'))


def downgrade():
    op.drop_index('ix_users_provisioned_at', table_name='users', postgresql_where=sa.text('provisioned_at IS NOT NULL'))
    op.drop_column('users', 'provisioned_at')
    op.drop_index('ix_sync_runs_finished_at', table_name='sync_runs')
    op.drop_table('sync_runs')
