"""The address book: a shopper's shipping addresses, one of them the default.

Every read and write is scoped by user id, so nobody reaches another's address (404, not 403).
Checkout copies the chosen address onto the order (`ShippingAddress`), so editing or deleting
an entry later changes no past order.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update

from shop.database import transaction
from shop.extensions import db
from shop.models import User
from shop.store.models import Address

MAX_ADDRESSES = 20  # enough for anyone, and a bound on what one account can store


class AddressError(Exception):
    """The message is for the shopper."""


@dataclass(frozen=True, slots=True)
class ShippingAddress:
    """The fields an order copies."""

    name: str
    line1: str
    line2: str | None
    postal_code: str
    city: str
    country: str

    @classmethod
    def of(cls, address: Address) -> ShippingAddress:
        return cls(address.name, address.line1, address.line2, address.postal_code, address.city, address.country)


def list_for_user(user_id: int) -> list[Address]:
    statement = select(Address).where(Address.user_id == user_id).order_by(Address.is_default.desc(), Address.id.asc())
    return list(db.session.scalars(statement))


def get_for_user(user_id: int, address_id: int) -> Address | None:
    return db.session.scalar(select(Address).where(Address.id == address_id, Address.user_id == user_id))


def _clear_default(user_id: int) -> None:
    db.session.execute(
        update(Address)
        .where(Address.user_id == user_id, Address.is_default.is_(True))
        .values(is_default=False)
        .execution_options(synchronize_session=False)
    )


def _lock_live_user(user_id: int) -> None:
    """Serialise this user's writes, and hold off a concurrent tombstone (FOR SHARE blocks its UPDATE):
    either this write commits first and the tombstone then erases it, or the tombstone wins and we refuse."""
    live = db.session.scalar(
        select(User.id).where(User.id == user_id, User.deleted_at.is_(None)).with_for_update(read=True)
    )
    if live is None:
        raise AddressError("This account has been deleted, so it has no address book.")
    db.session.execute(select(func.pg_advisory_xact_lock(user_id)))


def add(user_id: int, fields: ShippingAddress, *, make_default: bool = False) -> Address:
    """Add an entry; commits. The first entry becomes the default by itself."""
    with transaction():
        _lock_live_user(user_id)
        count = db.session.execute(
            select(func.count()).select_from(Address).where(Address.user_id == user_id)
        ).scalar_one()
        if count >= MAX_ADDRESSES:
            raise AddressError(f"Your address book is full ({MAX_ADDRESSES} addresses); delete one first.")
        make_default = make_default or count == 0
        if make_default:
            _clear_default(user_id)
        address = Address(user_id=user_id, is_default=make_default, **_columns(fields))
        db.session.add(address)
    return address


def edit(user_id: int, address_id: int, fields: ShippingAddress, *, make_default: bool = False) -> Address | None:
    """Change an entry; commits. None when it is not this user's."""
    with transaction():
        _lock_live_user(user_id)
        address = get_for_user(user_id, address_id)
        if address is None:
            return None
        for column, value in _columns(fields).items():
            setattr(address, column, value)
        if make_default and not address.is_default:
            _clear_default(user_id)
            address.is_default = True
    return address


def set_default(user_id: int, address_id: int) -> bool:
    with transaction():
        _lock_live_user(user_id)
        address = get_for_user(user_id, address_id)
        if address is None:
            return False
        if not address.is_default:
            _clear_default(user_id)
            address.is_default = True
    return True


def delete(user_id: int, address_id: int) -> bool:
    """Remove an entry; the oldest remaining one becomes the default if the default went."""
    with transaction():
        _lock_live_user(user_id)
        address = get_for_user(user_id, address_id)
        if address is None:
            return False
        was_default = address.is_default
        db.session.delete(address)
        db.session.flush()
        if was_default:
            successor = db.session.scalar(
                select(Address).where(Address.user_id == user_id).order_by(Address.id).limit(1)
            )
            if successor is not None:
                successor.is_default = True
    return True


def _columns(fields: ShippingAddress) -> dict[str, str | None]:
    return {
        "name": fields.name,
        "line1": fields.line1,
        "line2": fields.line2 or None,
        "postal_code": fields.postal_code,
        "city": fields.city,
        "country": fields.country,
    }
