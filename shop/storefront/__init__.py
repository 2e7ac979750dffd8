"""The shopper's pages: catalogue, cart, checkout, orders, the address book, /api/orders, and `flask seed`.

Views only, and thin: every rule lives in the services below (shop/store/: catalogue, cart, checkout,
orders, addresses, the order's state machines; shop/payments/: Stripe). The blueprint keeps the name
"store", so endpoints read `store.cart_page` as before.
"""

from flask import Blueprint

# cli_group=None: the blueprint's commands are top-level (`flask seed`).
bp = Blueprint("store", __name__, cli_group=None)

from shop.storefront import address_routes, api, cli, context, image_routes, routes  # noqa: E402,F401  (they attach to bp)
