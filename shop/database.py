"""What the whole app shares about the database: one transaction helper, one way to describe a
database error, one way to write an upsert on a hot path, and the connections that need a whole
PostgreSQL session.

Behind a transaction-mode pooler (PgBouncer, Neon's `-pooler` host) each transaction may run on
another server connection: what lasts beyond a transaction (a session-level advisory lock, a
server-side prepared statement, a plain SET, LISTEN) is lost or lands on someone else's. The app
itself needs none of these per request (prepared statements are switched off when pooled, the
mirror's locks are transaction-level). Migrations and the sync's lock do: they connect through
DATABASE_URL_DIRECT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import current_app
from sqlalchemy import Executable, StatementLambdaElement, lambda_stmt
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import scoped_session

from shop.extensions import db

MAX_ERROR_LENGTH = 2000  # what an error stored for operators (webhook_events.error, sync_runs) may hold


@contextmanager
def transaction() -> Iterator[scoped_session]:
    """The ORM session as one unit of work: committed when the block ends, rolled back (and the
    error re-raised) when anything escapes it, a KeyboardInterrupt included."""
    try:
        yield db.session
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def describe_error(exc: BaseException) -> str:
    """An error as shown to operators: the driver's message, not SQLAlchemy's SQL dump."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        # Only PostgreSQL's primary message: its DETAIL can quote the row, e-mail included.
        diag = getattr(exc.orig, "diag", None)
        message = getattr(diag, "message_primary", None) or (str(exc.orig).splitlines() or [""])[0]
        text = f"{type(exc.orig).__name__}: {message}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text.strip()[:MAX_ERROR_LENGTH]


def compiled_once(build: Callable[[], Executable]) -> StatementLambdaElement:
    """The statement `build()` returns, as a module constant that SQLAlchemy compiles once per
    engine: the one way to write an INSERT … ON CONFLICT run on a request's or an event's path.
    Its values are bindparam()s, given at execution: `conn.execute(CONSTANT, parameters)`.

    Why: SQLAlchemy does not cache the compiled form of PostgreSQL's INSERT … ON CONFLICT
    (postgresql.Insert sets inherit_cache = False), so executed as built it is compiled at every
    call: 0.2 to 0.6 ms of CPU each, 0.85 ms for a webhook delivery's two upserts, whose whole cost
    is about 1.8 ms (bench/README.md). SQLAlchemy's own lambda_stmt keeps a compiled form under
    the lambda's code and, here, `build`; the execution is SQLAlchemy's as usual (types'
    processing, column defaults). tests/test_upsert_caching.py fails on the day SQLAlchemy caches
    these upserts itself: this helper can then go.
    """
    return lambda_stmt(lambda: build(), track_on=[build])


DIRECT_BIND = "direct"  # the Flask-SQLAlchemy bind of DATABASE_URL_DIRECT, when DATABASE_URL is pooled


class DirectURLMissing(Exception):
    """A session-level feature was asked for while only a pooled URL is configured."""


def session_engine(purpose: str) -> Engine:
    """An engine whose connections are whole PostgreSQL sessions: DATABASE_URL's own when it is
    direct, DATABASE_URL_DIRECT's when DATABASE_URL is pooled; `purpose` names the need in the error."""
    if not current_app.config["SHOP_DATABASE_POOLED"]:
        return db.engine
    if DIRECT_BIND in db.engines:
        return db.engines[DIRECT_BIND]
    raise DirectURLMissing(
        f"DATABASE_URL goes through a transaction-mode pooler, where {purpose} cannot hold a session: "
        "set DATABASE_URL_DIRECT to the direct PostgreSQL URL (on Neon, the same host without -pooler)."
    )
