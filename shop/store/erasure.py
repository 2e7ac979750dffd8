"""What the store erases when a user becomes a tombstone: the cart (its lines cascade) and the address
book. Orders stay, with their own copy of the shipping address (accounting needs it; see
docs/payments.md).

The mirror (shop/mirror.py) is below the store and imports nothing of it: the app factory calls
`register()`, which hands these erasers to `mirror.on_tombstone`, so that every tombstone, by webhook,
sync or first sign-in, erases them in its own transaction.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete

from shop import mirror
from shop.store.models import Address, Cart


def erase_cart(conn: Connection, user_id: int) -> None:
    conn.execute(delete(Cart).where(Cart.user_id == user_id))


def erase_address_book(conn: Connection, user_id: int) -> None:
    conn.execute(delete(Address).where(Address.user_id == user_id))


def register() -> None:
    """Called by the app factory (shop.create_app); registering again changes nothing."""
    mirror.on_tombstone(erase_cart)
    mirror.on_tombstone(erase_address_book)
