"""Payments: addresses, the order's payment status and shipping address copy, the mail outbox

Revision ID: 0005_payments
Revises: 0004_sync_runs
Create Date: 2026-11-29 15:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005_payments'
down_revision = '0004_sync_runs'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('addresses',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('line1', sa.Text(), nullable=False),
    sa.Column('line2', sa.Text(), nullable=True),
    sa.Column('postal_code', sa.Text(), nullable=False),
    sa.Column('city', sa.Text(), nullable=False),
    sa.Column('country', sa.CHAR(length=2), nullable=False),
    sa.Column('is_default', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("country ~ '^[A-Z]{2}$'", name='ck_addresses_country_code'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_addresses_user_id', 'addresses', ['user_id'], unique=False)
    op.create_index('uq_addresses_user_default', 'addresses', ['user_id'], unique=True,
                    postgresql_where=sa.text('is_default'))

    # Orders placed before payments existed were never paid through Stripe; they count as paid
    # (so staff can still ship them) and hold their stock as they always did.
    op.add_column('orders', sa.Column('payment_status', sa.String(length=16), server_default='paid', nullable=False))
    op.alter_column('orders', 'payment_status', server_default='pending')
    op.add_column('orders', sa.Column('holds_stock', sa.Boolean(), server_default=sa.text('true'), nullable=False))
    op.add_column('orders', sa.Column('stripe_checkout_session_id', sa.String(length=255), nullable=True))
    op.add_column('orders', sa.Column('stripe_checkout_url', sa.Text(), nullable=True))
    op.add_column('orders', sa.Column('stripe_payment_intent_id', sa.String(length=255), nullable=True))
    op.add_column('orders', sa.Column('payment_expires_at', sa.DateTime(timezone=True), nullable=True))
    for column in ('ship_name', 'ship_line1', 'ship_line2', 'ship_postal_code', 'ship_city'):
        op.add_column('orders', sa.Column(column, sa.Text(), nullable=True))
    op.add_column('orders', sa.Column('ship_country', sa.CHAR(length=2), nullable=True))
    op.create_unique_constraint('orders_stripe_checkout_session_id_key', 'orders', ['stripe_checkout_session_id'])
    op.create_index('ix_orders_stripe_payment_intent_id', 'orders', ['stripe_payment_intent_id'], unique=False)
    op.create_check_constraint(
        'ck_orders_payment_status', 'orders',
        "payment_status IN ('pending', 'paid', 'failed', 'refund_pending', 'refunded')",
    )

    op.create_table('mail_outbox',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('order_id', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('to_address', sa.Text(), nullable=True),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('file_name', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name='ck_mail_outbox_status'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('order_id', 'kind', name='uq_mail_outbox_order_kind')
    )
    op.create_index('ix_mail_outbox_due', 'mail_outbox', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text("status = 'pending'"))


def downgrade():
    op.drop_index('ix_mail_outbox_due', table_name='mail_outbox', postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('mail_outbox')
    op.drop_constraint('ck_orders_payment_status', 'orders', type_='check')
    op.drop_index('ix_orders_stripe_payment_intent_id', table_name='orders')
    op.drop_constraint('orders_stripe_checkout_session_id_key', 'orders', type_='unique')
    for column in ('ship_country', 'ship_city', 'ship_postal_code', 'ship_line2', 'ship_line1', 'ship_name',
                   'payment_expires_at', 'stripe_payment_intent_id', 'stripe_checkout_url',
                   'stripe_checkout_session_id', 'holds_stock', 'payment_status'):
        op.drop_column('orders', column)
    op.drop_index('uq_addresses_user_default', table_name='addresses', postgresql_where=sa.text('is_default'))
    op.drop_index('ix_addresses_user_id', table_name='addresses')
    op.drop_table('addresses')
