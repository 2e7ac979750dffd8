"""Clerk's webhook as a source of the inbox: Svix's signature, Clerk's envelope, the mirror's change
(user events) or a session refused from the next request on (`session.revoked|ended|removed`,
shop.revoked_sessions).

The effect runs on a Core connection of its own rather than the ORM session: nothing here loads
objects, and the session's bookkeeping cost a third of a delivery's CPU (bench/README.md). Two
deliveries claiming one e-mail at once meet the unique index; the loser's whole transaction runs
again (mirror.retry_email_conflicts), the way one retries a serialization failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection
from werkzeug.datastructures import Headers

from shop import mirror, revoked_sessions
from shop.clerk import signatures
from shop.clerk.events import USER_DELETED, ClerkEvent, NotAClerkEvent, parse_event
from shop.extensions import db
from shop.webhooks import inbox

log = logging.getLogger(__name__)


class ClerkSource:
    name = "clerk"
    title = "Clerk"
    secrets_setting = "CLERK_WEBHOOK_SECRETS"

    def verify(self, raw: bytes, headers: Headers, secrets: list[str]) -> str | None:
        try:
            return signatures.verify(raw, headers, secrets)
        except signatures.MissingHeaders:
            raise inbox.MissingSignature("Missing svix headers") from None

    def parse(self, payload: Any, delivery_id: str | None) -> inbox.Event:
        assert delivery_id is not None, "verify() returns the svix-id or raises"
        try:
            event = parse_event(payload)
        except NotAClerkEvent as exc:
            raise inbox.NotAnEvent(str(exc)) from exc
        return inbox.Event(delivery_id, event.type, event.is_handled, event, user_id=event.user_id)

    def failed_id(self, payload: Any, delivery_id: str | None) -> str | None:
        return delivery_id

    @contextmanager
    def unit_of_work(self) -> Iterator[Connection]:
        with db.engine.connect() as conn, conn.begin():
            yield conn

    def run(self, attempt: Callable[[], inbox.Outcome]) -> inbox.Outcome:
        return mirror.retry_email_conflicts(attempt)

    def apply(self, conn: Connection, event: inbox.Event) -> inbox.Applied:
        clerk_event: ClerkEvent = event.data
        change = None
        if clerk_event.snapshot is not None:
            change = mirror.apply_snapshot(conn, clerk_event.snapshot)
        elif clerk_event.type == USER_DELETED and clerk_event.user_id:
            change = mirror.apply_deletion(conn, clerk_event.user_id)
        elif (ended := clerk_event.ended_session) is not None:
            # Whether or not the user is mirrored yet: the session id alone is what a token carries.
            pruned = revoked_sessions.record(conn, ended.session_id, ended.user_id, ended.status, ended.ended_at)
            log.debug("session %s %s (%d lapsed revocations pruned)", ended.session_id, ended.status, pruned)
        if change is not None:
            log.debug("mirror %s: %s", clerk_event.user_id, change)
        return inbox.Applied()


SOURCE = inbox.register(ClerkSource())
