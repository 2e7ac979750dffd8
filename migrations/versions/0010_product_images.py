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
    # One row per distinct image (shop.images.prepare_upload's output), named by its SHA-256: in the
    # database, so every instance of a deployment serves it without a shared disk.
    op.create_table(
        "product_images",
        sa.Column("sha256", sa.CHAR(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="ck_product_images_sha256_hex"),
        sa.CheckConstraint(
            "content_type IN ('image/png', 'image/jpeg', 'image/webp')", name="ck_product_images_content_type"
        ),
        sa.CheckConstraint("octet_length(data) BETWEEN 1 AND 5242880", name="ck_product_images_size"),
        sa.PrimaryKeyConstraint("sha256"),
    )
    # PNG, JPEG and WebP are compressed already: TOAST stores them out of line without trying again.
    op.execute("ALTER TABLE product_images ALTER COLUMN data SET STORAGE EXTERNAL")
    op.add_column("products", sa.Column("image_sha256", sa.CHAR(length=64), nullable=True))
    op.create_foreign_key(None, "products", "product_images", ["image_sha256"], ["sha256"])
    # Also what removing an image asks: does another product still show it?
    op.create_index("ix_products_image_sha256", "products", ["image_sha256"])


def downgrade():
    op.drop_index("ix_products_image_sha256", table_name="products")
    op.drop_constraint("products_image_sha256_fkey", "products", type_="foreignkey")
    op.drop_column("products", "image_sha256")
    op.drop_table("product_images")
