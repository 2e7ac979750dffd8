"""Repair on sign-in: a signed-in user whose mirror row is known to be stale is fetched from Clerk again.

The mirror marks a row `needs_resync` when another Clerk user claims its e-mail: the row gave the
address up, and whatever Clerk holds for it now (most likely a new address) has not arrived. When
that user signs in, this fetches the current Clerk user and writes it through the mirror
(shop.clerk_user, the path of `flask sync-clerk user` too; a user Clerk no longer has is tombstoned).

The fetch runs on a background thread of the worker, after the response is on its way: the page is
served with the row as it is and the next request sees the repaired one. At most one attempt per
user every RETRY_SECONDS in each process, so a Clerk outage never turns page views into API calls.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, Response, current_app, g
from sqlalchemy.exc import SQLAlchemyError

from shop import metrics
from shop.auth import bp
from shop.auth.session import backend_api
from shop.clerk.api import ClerkAPIError
from shop.clerk.users import NotAClerkUser
from shop.clerk_user import sync_user
from shop.extensions import db

log = logging.getLogger(__name__)

RETRY_SECONDS = 60.0
MAX_REMEMBERED = 10_000


class Resyncer:
    """One background thread per process, and when each user was last tried."""

    def __init__(self, app: Flask, retry_seconds: float = RETRY_SECONDS):
        self.app = app
        self.retry_seconds = retry_seconds
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sign-in-resync")
        self._tried: dict[str, float] = {}
        self._lock = threading.Lock()

    def _due(self, clerk_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._tried.get(clerk_id)
            if last is not None and now - last < self.retry_seconds:
                return False
            if len(self._tried) >= MAX_REMEMBERED:
                self._tried = {k: t for k, t in self._tried.items() if now - t < self.retry_seconds}
            self._tried[clerk_id] = now
            return True

    def request(self, clerk_id: str) -> None:
        if self._due(clerk_id):
            self.executor.submit(self._repair, clerk_id)

    def _repair(self, clerk_id: str) -> None:
        with self.app.app_context():
            try:
                change, _ = sync_user(backend_api(), clerk_id)
            except (ClerkAPIError, NotAClerkUser, SQLAlchemyError) as exc:
                log.warning(
                    "re-sync of %s at sign-in failed, retried after %.0f s: %s", clerk_id, self.retry_seconds, exc
                )
                metrics.record_sign_in_resync("failed")
                return
            finally:
                db.session.remove()
            log.info("re-sync of %s at sign-in: %s", clerk_id, change)
            metrics.record_sign_in_resync(change.value if change else "unknown_to_clerk")


def resyncer() -> Resyncer:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if "sign_in_resync" not in app.extensions:
        app.extensions["sign_in_resync"] = Resyncer(app)
    return app.extensions["sign_in_resync"]


@bp.after_app_request
def repair_stale_user(response: Response) -> Response:
    user = g.get("user")
    if user is not None and getattr(user, "needs_resync", False):
        resyncer().request(user.clerk_id)
    return response
