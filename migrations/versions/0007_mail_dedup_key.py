"""A generic outbox: each mail has its own de-duplication key, in place of one mail per (order, kind)

Revision ID: 0007_mail_dedup_key
Revises: 0006_money
Create Date: 2026-12-14 04:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_mail_dedup_key'
down_revision = '0006_money'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('mail_outbox', sa.Column('dedup_key', sa.String(length=200), nullable=True))
    # The rows already written: the key the store now gives an order's mail ("order-12.order_confirmed"),
    # so a mail written again after this revision is the same one, and the Message-ID, made of the
    # row's id and key, stays what it was ("<mail-5.order-12.order_confirmed@shop.invalid>"). A row
    # whose order was deleted (order_id set to NULL) is named by its own id.
    op.execute(
        "UPDATE mail_outbox SET dedup_key = CASE WHEN order_id IS NULL "
        "THEN 'mail-' || id || '.' || kind ELSE 'order-' || order_id || '.' || kind END"
    )
    op.alter_column('mail_outbox', 'dedup_key', existing_type=sa.String(length=200), nullable=False)
    op.drop_constraint('uq_mail_outbox_order_kind', 'mail_outbox', type_='unique')
    op.create_unique_constraint('uq_mail_outbox_dedup_key', 'mail_outbox', ['dedup_key'])


def downgrade():
    # Back to one mail per (order, kind): a second mail of the same kind for an order (none is written
    # by this revision's code) would refuse the constraint; the mails without an order keep NULL.
    op.drop_constraint('uq_mail_outbox_dedup_key', 'mail_outbox', type_='unique')
    op.create_unique_constraint('uq_mail_outbox_order_kind', 'mail_outbox', ['order_id', 'kind'])
    op.drop_column('mail_outbox', 'dedup_key')
