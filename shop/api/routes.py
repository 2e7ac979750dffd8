from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import current_app, g, jsonify
from sqlalchemy import func, select, text
from sqlalchemy.exc import ProgrammingError, SQLAlchemyError

from shop.api import bp
from shop.auth.decorators import login_required
from shop.extensions import db
from shop.models import User

log = logging.getLogger(__name__)

DATABASE_DOWN = "The database is unreachable: check DATABASE_URL and that PostgreSQL is running."
NO_SCHEMA = "The database has no tables yet: run `flask db upgrade` (or `make db`)."


@bp.get("/health")
def health():
    """For a load balancer: 200 when this instance can serve, 503 when its database is unreachable."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="unavailable", database="unreachable"), 503
    return jsonify(status="ok", database="ok")


def database_url_status() -> str:
    """Whether DATABASE_URL is set, never the URL itself: the embedded server is used when it is not."""
    return "✅ Set" if current_app.config.get("DATABASE_URL") else "embedded"


@bp.get("/test-db")
def test_db():
    try:
        user_count = db.session.scalar(select(func.count()).select_from(User).where(User.deleted_at.is_(None)))
    except ProgrammingError as exc:
        db.session.rollback()
        log.warning("database check failed: %s", type(exc.orig).__name__)
        data = {"connected": True, "databaseUrl": database_url_status()}
        return jsonify(status="error", message=NO_SCHEMA, data=data), 503
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("database check failed: %s", type(exc).__name__)
        data = {"connected": False, "databaseUrl": database_url_status()}
        return jsonify(status="error", message=DATABASE_DOWN, data=data), 503
    return jsonify(
        status="success",
        message="Database connection successful",
        data={
            "connected": True,
            "userCount": user_count,
            "timestamp": datetime.now(UTC).isoformat(),
            "databaseUrl": database_url_status(),
        },
    )


@bp.get("/me")
@login_required
def me():
    return jsonify(g.user.to_dict())
