"""First sign-in before the webhook: fetch the user from Clerk's Backend API and write it through the mirror."""

from __future__ import annotations

import logging

from sqlalchemy import func, update

from shop import metrics, mirror
from shop.clerk.api import ClerkAPI, ClerkAPIError
from shop.clerk.users import NotAClerkUser, parse_user
from shop.database import transaction
from shop.models import User

log = logging.getLogger(__name__)


class ProvisioningFailed(Exception):
    """Clerk could not tell us who this is right now; the shopper should retry shortly."""


def provision(api: ClerkAPI, clerk_id: str) -> None:
    """Write the mirror row of a verified user who has none yet (a tombstone if Clerk says the user is gone).

    Concurrent first requests of one user all upsert the same snapshot: one row results.
    """
    try:
        clerk_user = api.get_user(clerk_id)
    except ClerkAPIError as exc:
        log.warning("first sign-in of %s: Clerk's Backend API failed: %s", clerk_id, exc)
        raise ProvisioningFailed(str(exc)) from exc
    try:
        snapshot = parse_user(clerk_user) if clerk_user is not None else None
    except NotAClerkUser as exc:
        raise ProvisioningFailed(f"Clerk returned an unusable user: {exc}") from exc

    def write() -> mirror.Change:
        with transaction() as session:
            if snapshot is None:
                # a valid token for a user Clerk no longer has
                change = mirror.apply_deletion(session.connection(), clerk_id)
            else:
                change = mirror.apply_snapshot(session.connection(), snapshot)
            if change == mirror.Change.CREATED:  # this sign-in, not the webhook, brought the user in
                session.execute(update(User).where(User.clerk_id == clerk_id).values(provisioned_at=func.now()))
        return change

    if mirror.retry_email_conflicts(write) == mirror.Change.CREATED:
        metrics.record_provisioning()
    log.info("first sign-in: %s provisioned from Clerk's Backend API", clerk_id)
