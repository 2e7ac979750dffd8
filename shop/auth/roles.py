"""Roles: finding a user by what an operator types, and changing a role with a log line.

Used by `flask users set-role` and by the staff's users page, so a role changes (and is logged)
the same way whichever door it comes through.
"""

from __future__ import annotations

import logging

from sqlalchemy import or_, select

from shop.extensions import db
from shop.mirror import email_key
from shop.models import Role, User

log = logging.getLogger(__name__)


def find_by_email_or_clerk_id(identifier: str) -> User | None:
    """A live user by Clerk id or e-mail (compared by the mirror's key: case, width, invisible characters)."""
    return db.session.scalar(
        select(User).where(
            User.deleted_at.is_(None),
            or_(User.clerk_id == identifier, User.email_key == email_key(identifier)),
        )
    )


def change_role(user: User, role: Role, *, by: str) -> bool:
    """Set a role and log who did it; returns whether anything changed. The caller commits."""
    if user.role == role:
        return False
    log.info("role of %s changed from %s to %s by %s", user.clerk_id, user.role, role, by)
    user.role = role
    return True
