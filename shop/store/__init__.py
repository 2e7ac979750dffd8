"""The storefront: catalogue, cart, checkout and orders (pages, /api/orders, and `flask seed`).

Views are thin; the rules live in services the CLI and tests call directly:
`catalogue.py` (products), `cart.py`, `checkout.py` (stock taken atomically, idempotent),
`orders.py` (the allowed status moves).
"""

from flask import Blueprint

# cli_group=None: the blueprint's commands are top-level (`flask seed`).
bp = Blueprint("store", __name__, cli_group=None)

from shop.store import address_routes, api, cli, context, routes  # noqa: E402,F401  (they attach to bp)
