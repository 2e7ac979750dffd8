"""Sign-in: the Clerk session on every request, first-sign-in provisioning, roles, and their pages."""

from flask import Blueprint

bp = Blueprint("auth", __name__, cli_group="users")

from shop.auth import cli, resync, routes, session  # noqa: E402,F401  (they attach to bp)
