"""users.email_key: e-mail uniqueness on a key computed in Python, not on PostgreSQL's lower()

PostgreSQL's lower() follows the database's locale and disagreed with Python's: with
bill@example.com live, a snapshot for Bİll@example.com passed the mirror's check and then hit the
unique index on lower(email) (500 on every retry). The key is now shop.mirror.email_key(email),
stored, and the index covers it.

Existing rows get their key from the same function. Addresses that the new key counts as one (for
example a fullwidth copy of a live address) keep the newest claim, as the mirror would: the other
rows give the address up and are marked for re-sync, so the index can be built on any data.

Revision ID: 0003_email_key
Revises: 0002_storefront
Create Date: 2026-11-29 15:00:00

"""

import sqlalchemy as sa
from alembic import op

from shop.mirror import email_key

revision = "0003_email_key"
down_revision = "0002_storefront"
branch_labels = None
depends_on = None

BATCH = 10_000

# Within each group of live rows that share a key, every row but the newest claim gives it up.
RELEASE_DUPLICATES = """
UPDATE users SET {clear}, needs_resync = true, updated_at = now()
WHERE id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (
            PARTITION BY {key} ORDER BY clerk_updated_at DESC NULLS LAST, id DESC
        ) AS claim
        FROM users WHERE deleted_at IS NULL AND {key} IS NOT NULL
    ) AS claims
    WHERE claim > 1
)
"""


def upgrade():
    op.drop_index("uq_users_live_email", table_name="users")
    op.add_column("users", sa.Column("email_key", sa.Text(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, email FROM users WHERE email IS NOT NULL ORDER BY id")).all()
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        conn.execute(
            sa.text(
                "UPDATE users SET email_key = keyed.key FROM unnest(:ids, :keys) AS keyed(id, key) "
                "WHERE users.id = keyed.id"
            ).bindparams(
                sa.bindparam("ids", [row.id for row in batch], type_=sa.ARRAY(sa.BigInteger)),
                sa.bindparam("keys", [email_key(row.email) for row in batch], type_=sa.ARRAY(sa.Text)),
            )
        )
    conn.execute(sa.text(RELEASE_DUPLICATES.format(key="email_key", clear="email = NULL, email_key = NULL")))
    op.create_check_constraint("ck_users_email_key", "users", "(email IS NULL) = (email_key IS NULL)")
    op.create_index(
        "uq_users_live_email",
        "users",
        ["email_key"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL AND email_key IS NOT NULL"),
    )


def downgrade():
    op.drop_index("uq_users_live_email", table_name="users")
    op.drop_constraint("ck_users_email_key", "users", type_="check")
    op.drop_column("users", "email_key")
    # The old index may find duplicates the key told apart (Bİll and bill): resolved the same way.
    op.get_bind().execute(sa.text(RELEASE_DUPLICATES.format(key="lower(email)", clear="email = NULL")))
    op.create_index(
        "uq_users_live_email",
        "users",
        [sa.literal_column("lower(email)")],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL AND email IS NOT NULL"),
    )
