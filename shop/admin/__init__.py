"""The staff's pages, all behind `admin_required`: orders, products, users, webhook events."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from shop.admin import mail, orders, products, routes, shipping, users, webhooks  # noqa: E402,F401
