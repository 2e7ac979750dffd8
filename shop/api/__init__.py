"""JSON endpoints: health, the database check, and (later) the signed-in user's data."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from shop.api import routes  # noqa: E402,F401
