"""First sign-in before the webhook: fetch the user from Clerk's Backend API and write it through the mirror."""

from __future__ import annotations

import logging

from shop import clerk_user, metrics, mirror
from shop.clerk.api import ClerkAPI, ClerkAPIError
from shop.clerk.users import NotAClerkUser

log = logging.getLogger(__name__)


class ProvisioningFailed(Exception):
    """Clerk could not tell us who this is right now; the shopper should retry shortly."""


def provision(api: ClerkAPI, clerk_id: str) -> None:
    """Write the mirror row of a verified user who has none yet (a tombstone if Clerk says the user is gone).

    Through shop.clerk_user, whose rules every one-user fetch follows; a session token Clerk signed
    names a user Clerk created, so a 404 leaves a tombstone even here, where the mirror holds no row.
    Concurrent first requests of one user all upsert the same snapshot: one row results.
    """
    try:
        change, _ = clerk_user.sync_user(api, clerk_id, tombstone_unknown=True, mark_provisioned=True)
    except ClerkAPIError as exc:
        log.warning("first sign-in of %s: Clerk's Backend API failed: %s", clerk_id, exc)
        raise ProvisioningFailed(str(exc)) from exc
    except NotAClerkUser as exc:
        raise ProvisioningFailed(f"Clerk returned an unusable user: {exc}") from exc
    if change == mirror.Change.CREATED:  # this sign-in, not the webhook, brought the user in
        metrics.record_provisioning()
    log.info("first sign-in: %s provisioned from Clerk's Backend API", clerk_id)
