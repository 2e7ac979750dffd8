"""The models and the committed migrations describe the same schema; a migration that moves data keeps it."""

import flask_migrate
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shop import create_app
from shop.extensions import db
from tests.conftest import DIRECT_URLS, _new_database, settings


def test_the_models_match_the_migrations(app):
    """The suite's database was built by `flask db upgrade`; the models must find nothing to add or drop."""
    with app.app_context(), db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert differences == [], "models and migrations differ; write a migration: flask db migrate -m '…'"


def test_0016_keeps_what_orders_had_refunded(database_url):
    """An order refunded before 0016 keeps its figure as the total Stripe last told (with no time: each
    failure before it was taken off already), and the migration goes down again."""
    server = DIRECT_URLS.get(database_url, database_url)
    url, drop = _new_database(server, f"{make_url(server).database}_0016")
    try:
        app = create_app(settings(url))
        with app.app_context():
            flask_migrate.upgrade(revision="0015_partial_refunds")
            with db.engine.begin() as conn:
                conn.execute(text("INSERT INTO users (clerk_id) VALUES ('user_0016')"))
                for key, refunded in (("a", 0), ("b", 300)):
                    conn.execute(
                        text(
                            "INSERT INTO orders (user_id, total_cents, currency, idempotency_key, refunded_cents)"
                            " SELECT id, 1000, 'EUR', :key, :refunded FROM users"
                        ),
                        {"key": key, "refunded": refunded},
                    )
            flask_migrate.upgrade(revision="0016_failed_refunds")
            with db.engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT idempotency_key, refunded_cents, stripe_refunded_cents, stripe_refunded_as_of"
                        " FROM orders ORDER BY idempotency_key"
                    )
                ).all()
            assert [tuple(row) for row in rows] == [("a", 0, 0, None), ("b", 300, 300, None)]
            flask_migrate.downgrade(revision="0015_partial_refunds")
            db.engine.dispose()
    finally:
        drop()
