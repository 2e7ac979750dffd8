"""The database connections that need a whole PostgreSQL session.

Behind a transaction-mode pooler (PgBouncer, Neon's `-pooler` host) each transaction may run on
another server connection: what lasts beyond a transaction (a session-level advisory lock, a
server-side prepared statement, a plain SET, LISTEN) is lost or lands on someone else's. The app
itself needs none of these per request (prepared statements are switched off when pooled, the
mirror's locks are transaction-level). Migrations and the sync's lock do: they connect through
DATABASE_URL_DIRECT.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy.engine import Engine

from shop.extensions import db

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
