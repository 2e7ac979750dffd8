"""Error pages in the shop's style, and JSON errors under /api/. Never a traceback for a user."""

from __future__ import annotations

import logging
import traceback

from flask import Flask, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from psycopg.errors import UndefinedTable
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, InternalServerError

from shop.database import describe_error

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Bad request", "The request could not be understood."),
    401: ("Sign in needed", "Sign in to see this page."),
    403: ("Not allowed", "Your account cannot open this page."),
    404: ("Not found", "There is nothing here. The link may be old, or the item was removed."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    413: ("Too large", "What was sent is larger than this shop accepts: send something smaller."),
    500: ("Something went wrong", "The error was logged; please try again in a moment."),
    503: ("Temporarily unavailable", "The shop cannot reach its database right now. Please retry in a moment."),
}
NO_SCHEMA = "The database has no tables yet: the operator needs to run `flask db upgrade`."


def wants_json() -> bool:
    """Whether this request is answered in JSON (errors, "sign in needed"): the API, or a client that asks for it."""
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _render(status: int, message: str | None = None):
    title, default = MESSAGES.get(status, (f"Error {status}", ""))
    if wants_json():
        return jsonify(error=message or default), status
    return render_template("errors/error.html", status=status, title=title, message=message or default), status


def _rollback() -> None:
    from shop.extensions import db

    try:
        db.session.rollback()
    except Exception:  # the connection may be gone already; the pool replaces it
        log.debug("rollback after a database error failed", exc_info=True)
    # The error page is drawn signed out: signed in, its header would ask the database that just
    # failed for the cart count once more.
    g.user = None


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code is None or exc.code < 400:
            return exc
        return _render(exc.code)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return _render(400, "The form had expired or did not come from this shop. Go back, reload and try again.")

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError):
        log.error("database unavailable: %s", type(exc.orig).__name__ if exc.orig else type(exc).__name__)
        _rollback()
        body, status = _render(503)
        return body, status, {"Retry-After": "5"}

    @app.errorhandler(ProgrammingError)
    def schema_missing(exc: ProgrammingError):
        if not isinstance(exc.orig, UndefinedTable):
            return database_error(exc)
        log.error("database schema missing: run `flask db upgrade`")
        _rollback()
        return _render(503, NO_SCHEMA)

    @app.errorhandler(SQLAlchemyError)
    def database_error(exc: SQLAlchemyError):
        # Flask's own log line would print the exception's text, whose DETAIL can quote an e-mail:
        # the stack is logged without it.
        stack = "".join(traceback.format_tb(exc.__traceback__))
        log.error("database error in %s %s: %s\n%s", request.method, request.url_rule, describe_error(exc), stack)
        _rollback()
        return _render(500)

    @app.errorhandler(InternalServerError)
    def internal_error(exc: InternalServerError):
        return _render(500)
