"""What a tombstone erases beyond the user's row is registered by the store (shop.store.erasure) with the
mirror, which imports nothing of the store: the app factory registers it, so every process that builds the
app (a server, `flask sync-clerk`) erases, and each eraser runs in the tombstone's own transaction."""

from __future__ import annotations

import ast

from sqlalchemy import func, select

from shop import PROJECT_ROOT, mirror
from shop.extensions import db
from shop.models import User
from shop.store import erasure
from shop.store.models import Address, Cart
from tests.support import deleted_event


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):  # inside functions too
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update({node.module, *(f"{node.module}.{alias.name}" for alias in node.names)})
    return found


def test_the_mirror_and_the_outbox_import_nothing_of_the_store():
    for path in [PROJECT_ROOT / "shop" / "mirror.py", *(PROJECT_ROOT / "shop" / "mail").glob("*.py")]:
        upward = {name for name in imported_modules(path) if name.startswith(("shop.store", "shop.storefront"))}
        assert upward == set(), f"{path.name} imports {sorted(upward)}"


def test_the_app_factory_registers_the_stores_erasers_once(monkeypatch, make_app):
    monkeypatch.setattr(mirror, "_erasers", [])  # as in a fresh process, before any app was built
    make_app()
    make_app()  # every app built registers again: still once each
    assert mirror.erasers() == (erasure.erase_cart, erasure.erase_address_book)


def add_cart_and_address(app, clerk_id: str) -> int:
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.clerk_id == clerk_id))
        db.session.add(Cart(user_id=user_id))
        address = {"name": "Ada", "line1": "1 Rue de la Paix", "postal_code": "75002", "city": "Paris", "country": "FR"}
        db.session.add(Address(user_id=user_id, **address))
        db.session.commit()
        return user_id


def kept(app, user_id: int) -> tuple[bool, int, int]:
    """(is the user live, their carts, their addresses)"""
    with app.app_context():
        live = db.session.scalar(select(User.deleted_at.is_(None)).where(User.id == user_id))
        carts = db.session.scalar(select(func.count()).select_from(Cart).where(Cart.user_id == user_id))
        addresses = db.session.scalar(select(func.count()).select_from(Address).where(Address.user_id == user_id))
        db.session.rollback()
        return live, carts, addresses


def test_a_failing_eraser_undoes_the_tombstone_with_it(monkeypatch, app, make_user, deliver):
    """Same transaction: the deletion is not half done (a tombstone whose cart stayed); Svix retries it."""
    make_user("user_leaving")
    user_id = add_cart_and_address(app, "user_leaving")

    def broken(conn, user_id: int) -> None:
        raise RuntimeError("the eraser failed")

    monkeypatch.setattr(mirror, "_erasers", [*mirror.erasers(), broken])
    assert deliver(deleted_event("user_leaving")).status_code >= 500
    assert kept(app, user_id) == (True, 1, 1)

    monkeypatch.setattr(mirror, "_erasers", [erasure.erase_cart, erasure.erase_address_book])
    assert deliver(deleted_event("user_leaving")).json == {"status": "processed"}
    assert kept(app, user_id) == (False, 0, 0)
