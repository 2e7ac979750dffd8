"""Money you can trust: every Checkout Session of an order, what Stripe charged, refused payments, refund requests

Revision ID: 0006_money
Revises: 0005_payments
Create Date: 2026-12-07 04:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_money'
down_revision = '0005_payments'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('checkout_sessions',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('order_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_checkout_sessions_order_id', 'checkout_sessions', ['order_id'], unique=False)
    # The sessions orders already have: each order's one session until now.
    op.execute(
        "INSERT INTO checkout_sessions (id, order_id, created_at) "
        "SELECT stripe_checkout_session_id, id, created_at FROM orders WHERE stripe_checkout_session_id IS NOT NULL"
    )
    op.add_column('orders', sa.Column('charged_total_cents', sa.Integer(), nullable=True))
    op.add_column('orders', sa.Column('payment_warning', sa.Text(), nullable=True))
    op.add_column('orders', sa.Column('refund_requests', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('orders', sa.Column('stripe_refund_id', sa.String(length=255), nullable=True))
    # Refunds asked before this revision were keyed by the order's updated_at; counting starts at one
    # for them, so a new refund never reuses an old key.
    op.execute("UPDATE orders SET refund_requests = 1 WHERE payment_status IN ('refund_pending', 'refunded')")


def downgrade():
    op.drop_column('orders', 'stripe_refund_id')
    op.drop_column('orders', 'refund_requests')
    op.drop_column('orders', 'payment_warning')
    op.drop_column('orders', 'charged_total_cents')
    op.drop_index('ix_checkout_sessions_order_id', table_name='checkout_sessions')
    op.drop_table('checkout_sessions')
