"""The models and the committed migrations describe the same schema."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shop.extensions import db


def test_the_models_match_the_migrations(app):
    """The suite's database was built by `flask db upgrade`; the models must find nothing to add or drop."""
    with app.app_context(), db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert differences == [], "models and migrations differ; write a migration: flask db migrate -m '…'"
