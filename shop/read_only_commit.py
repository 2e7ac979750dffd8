"""A request whose transaction only read ends it with COMMIT instead of ROLLBACK.

Both end a read-only transaction alike, but psycopg forgets its prepared statements on every
ROLLBACK (it cannot tell what the rolled-back transaction did to them), and Flask-SQLAlchemy
ends every request's session with one. So no statement of a page was ever prepared: PostgreSQL
planned the catalogue query anew on every request. Ended with COMMIT, a page's statements are
prepared after a few uses and only executed from then on.

Measured (bench/read_only_commit.py, bench/README.md): the catalogue's two queries cost 1.80 ms a request
ended with COMMIT against 2.45 ms with ROLLBACK on a direct connection, and 1.97 against 2.40 ms with
prepared statements off as behind a transaction-mode pooler; so it stays on in both set-ups.

Only a transaction that provably wrote nothing is committed: no pending ORM change, and every
statement through its connection was a SELECT that SQLAlchemy compiled itself (its execution
context names the statement object). Text SQL counts as a write whatever it says, because
`SELECT writing_fn()` writes. Anything else (a view that wrote and did not commit, an error) is
rolled back at teardown, as before.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import Connection, Select, event
from sqlalchemy.engine import Engine, ExecutionContext
from sqlalchemy.exc import SQLAlchemyError

from shop.extensions import db

WROTE = "shop_transaction_wrote"


def _only_reads(context: ExecutionContext | None) -> bool:
    compiled = getattr(context, "compiled", None)
    return compiled is not None and isinstance(compiled.statement, Select)


def _note_writes(
    conn: Connection, cursor: Any, statement: str, parameters: Any, context: ExecutionContext | None, *args: Any
) -> None:
    if not _only_reads(context):
        conn.info[WROTE] = True


def _forget_writes(conn: Connection) -> None:
    conn.info[WROTE] = False


def watch(engine: Engine) -> None:
    event.listen(engine, "begin", _forget_writes)
    event.listen(engine, "before_cursor_execute", _note_writes)


def register(app: Flask) -> None:
    with app.app_context():
        for engine in db.engines.values():
            watch(engine)

    @app.teardown_request
    def commit_if_read_only(exc: BaseException | None) -> None:
        if exc is not None or not db.session.registry.has():
            return  # a request that never used the session (a webhook) must not create one here
        session = db.session()  # the request's Session itself (the scoped proxy lacks in_transaction)
        if not session.in_transaction():
            return
        if session.new or session.dirty or session.deleted:
            return
        if session.connection().info.get(WROTE, True):
            return
        try:
            session.commit()
        except SQLAlchemyError:  # the connection broke: nothing was written, the session's removal cleans up
            session.rollback()
