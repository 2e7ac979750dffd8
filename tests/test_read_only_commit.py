"""Requests that only read end with COMMIT (psycopg keeps its prepared statements); anything else rolls back."""

import pytest
from sqlalchemy import event, select, text

from shop.extensions import db
from shop.models import User


@pytest.fixture
def endings(app):
    """How each request's transaction ended, as SQLAlchemy saw it."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine
    listeners = {"commit": lambda conn: seen.append("commit"), "rollback": lambda conn: seen.append("rollback")}
    for name, listener in listeners.items():
        event.listen(engine, name, listener)
    yield seen
    for name, listener in listeners.items():
        event.remove(engine, name, listener)


@pytest.fixture
def kept(app, make_user):
    with app.app_context():
        db.session.execute(
            text(
                "CREATE OR REPLACE FUNCTION rename_kept() RETURNS void LANGUAGE sql AS "
                "$$ UPDATE users SET first_name = 'Changed' WHERE clerk_id = 'user_kept' $$"
            )
        )
        db.session.commit()
    yield make_user("user_kept", first_name="Kept")
    with app.app_context():
        db.session.execute(text("DROP FUNCTION rename_kept()"))
        db.session.commit()


def add_views(app):
    """Views that leave their writes uncommitted, as a buggy view would: teardown must not commit them."""

    @app.get("/test/insert-without-commit")
    def insert_without_commit():
        db.session.execute(text("UPDATE users SET first_name = 'Changed' WHERE clerk_id = 'user_kept'"))
        return "done"

    @app.get("/test/orm-change-without-commit")
    def orm_change_without_commit():
        db.session.scalar(select(User).where(User.clerk_id == "user_kept")).first_name = "Changed"
        return "done"

    @app.get("/test/select-that-writes")
    def select_that_writes():
        # A SELECT whose function writes: no text prefix tells it apart from a read.
        db.session.execute(text("SELECT rename_kept()"))
        return "done"

    @app.get("/test/fails-after-writing")
    def fails_after_writing():
        db.session.execute(text("UPDATE users SET first_name = 'Changed' WHERE clerk_id = 'user_kept'"))
        raise RuntimeError("boom")


def first_name(app) -> str:
    with app.app_context():
        return db.session.scalar(text("SELECT first_name FROM users WHERE clerk_id = 'user_kept'"))


def test_a_page_that_only_reads_ends_with_commit(client, kept, endings):
    assert client.get("/", headers={"Accept": "text/html"}).status_code == 200
    assert endings == ["commit"]


def test_its_statements_get_prepared_and_stay_prepared(app, client, kept):
    if app.config["SHOP_DATABASE_POOLED"]:
        pytest.skip("behind a transaction-mode pooler (.ci/run's PgBouncer) prepared statements are off by design")
    for _ in range(8):
        client.get("/", headers={"Accept": "text/html"})
    with app.app_context():
        prepared = db.session.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
        db.session.commit()
    # The pool gave this request the connection the pages used (one thread, one pooled connection).
    assert prepared >= 1


@pytest.mark.parametrize(
    "path", ["/test/insert-without-commit", "/test/orm-change-without-commit", "/test/select-that-writes"]
)
def test_an_uncommitted_write_is_rolled_back_not_committed(make_app, kept, path):
    app = make_app()
    add_views(app)
    assert app.test_client().get(path).status_code == 200
    assert first_name(app) == "Kept"


def test_a_view_that_fails_after_writing_is_rolled_back(make_app, kept):
    app = make_app()
    add_views(app)
    with pytest.raises(RuntimeError):  # the test client re-raises what the 500 page answered
        app.test_client().get("/test/fails-after-writing")
    assert first_name(app) == "Kept"
