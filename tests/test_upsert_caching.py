"""SQLAlchemy does not cache the compiled form of PostgreSQL's INSERT … ON CONFLICT, which is why the
hot paths' upserts are built with `shop.database.compiled_once`. The first test fails on the day
SQLAlchemy starts caching them: the helper can then be removed and its statements executed as built."""

import sqlalchemy
from sqlalchemy import bindparam, event
from sqlalchemy.dialects.postgresql import insert

from shop.database import compiled_once
from shop.extensions import db
from shop.models import User
from tests.support import clerk_user, deleted_event
from tests.support import event as clerk_event

UPSERT = insert(User).values(clerk_id=bindparam("clerk_id")).on_conflict_do_nothing(index_elements=[User.clerk_id])
UPSERT_COMPILED_ONCE = compiled_once(lambda: UPSERT)


def compiled_forms(conn, run) -> list:
    """The compiled objects behind two runs of one statement (inserting two users)."""
    return [run(conn, {"clerk_id": "user_a"}).context.compiled, run(conn, {"clerk_id": "user_b"}).context.compiled]


def test_sqlalchemy_still_compiles_a_postgresql_upsert_at_every_execution(app):
    with app.app_context(), db.engine.connect() as conn:
        first, second = compiled_forms(conn, lambda conn, values: conn.execute(UPSERT, values))
    assert first is not second, (
        "SQLAlchemy now caches the compiled form of PostgreSQL's INSERT … ON CONFLICT: "
        "shop.database.compiled_once can be removed and its statements executed as built."
    )


def test_the_check_sees_caching_where_there_is_some(app):
    """The control: SQLAlchemy's plain INSERT, which it caches, shows one compiled form for two runs."""
    plain_insert = sqlalchemy.insert(User).values(clerk_id=bindparam("clerk_id"))
    with app.app_context(), db.engine.connect() as conn:
        first, second = compiled_forms(conn, lambda conn, values: conn.execute(plain_insert, values))
    assert first is second


def test_compiled_once_compiles_once(app):
    with app.app_context(), db.engine.connect() as conn:
        first, second = compiled_forms(conn, lambda conn, values: conn.execute(UPSERT_COMPILED_ONCE, values))
    assert first is second


def test_each_compiled_once_statement_keeps_its_own_sql(app):
    """The helper's lambda is the same code for every statement: each must still run its own."""
    ignore = compiled_once(lambda: insert(User).values(clerk_id=bindparam("clerk_id")).on_conflict_do_nothing())
    with app.app_context(), db.engine.connect() as conn:
        conn.execute(UPSERT_COMPILED_ONCE, {"clerk_id": "user_a"})
        ran = conn.execute(ignore, {"clerk_id": "user_a"}).context.compiled.string
        again = conn.execute(UPSERT_COMPILED_ONCE, {"clerk_id": "user_a"}).context.compiled.string
    assert "ON CONFLICT DO NOTHING" in ran
    assert "ON CONFLICT (clerk_id) DO NOTHING" in again


def test_the_webhook_claim_and_the_mirrors_upserts_are_compiled_once(app, deliver):
    """Every INSERT of a webhook delivery (the claim, both upserts of the e-mail hand-over, the
    tombstone) is compiled once, however many deliveries run it."""
    compiled_by_statement: dict[str, list] = {}

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            compiled_by_statement.setdefault(statement, []).append(context.compiled)  # kept alive: no id reuse

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            for clerk_id in ("user_a", "user_b", "user_c"):  # all three claim one e-mail: handed over twice
                payload = clerk_user(clerk_id, email="shared@example.com", updated_at=1)
                assert deliver(clerk_event("user.updated", payload)).status_code == 200
            for clerk_id in ("user_a", "user_b"):
                assert deliver(deleted_event(clerk_id)).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", record)

    assert len(compiled_by_statement) == 4, list(compiled_by_statement)  # claim, two upserts, tombstone
    for statement, compiled in compiled_by_statement.items():
        assert len(compiled) >= 2, statement
        assert len({id(form) for form in compiled}) == 1, f"compiled at every run: {statement}"
