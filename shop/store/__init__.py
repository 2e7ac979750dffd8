"""The store's services and tables: what the pages (shop/storefront/, shop/admin/), the API, the CLI and the
tests call, and what Stripe's events move.

`models.py` (products, carts, orders, addresses), `catalogue.py` (products), `cart.py`, `checkout.py` (stock
taken atomically, idempotent, bounded per shopper), `lifecycle.py` (the order's two state machines: the one
writer of an order's status), `orders.py` (history, lists, staff moves), `addresses.py`, `money.py`, `seed.py`.
No views here: nothing in this package imports a page, or Stripe.
"""
