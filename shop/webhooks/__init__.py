"""Clerk's webhooks: `POST /api/webhooks/clerk` and the `flask webhooks` commands."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__)

from shop.webhooks import cli, routes  # noqa: E402,F401  (they attach to bp)
