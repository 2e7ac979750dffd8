"""`POST /api/webhooks/stripe`: Stripe's signed events, as a source of the shared webhook inbox.

The signature is checked on the raw bytes by the stripe library (`WebhookSignature.verify_header`),
against each configured secret in turn (two while a secret is rolled), with Stripe's default
tolerance of five minutes on the signed timestamp. Anything but a clean pass refuses: the library
raises SignatureVerificationError for a wrong signature, but TypeError (hmac.compare_digest) for a
non-ASCII one, and a verifier that raised has verified nothing. The body is then decoded once and
parsed once (shop.webhooks.inbox); `construct_event` is not used, since it would parse it again.
The answers are the inbox's, as for Clerk's webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import stripe
from sqlalchemy import Connection
from werkzeug.datastructures import Headers

from shop.database import transaction
from shop.extensions import csrf, db
from shop.payments import bp, events
from shop.webhooks import inbox

log = logging.getLogger(__name__)

TOLERANCE_SECONDS = stripe.Webhook.DEFAULT_TOLERANCE


class InvalidSignature(Exception):
    pass


def verify(raw: bytes, header: str, secrets: list[str]) -> None:
    """Return only if one of `secrets` signed these bytes within the tolerance; raise otherwise."""
    body = raw.decode("utf-8")  # Stripe signs UTF-8 JSON; UnicodeDecodeError refuses anything else
    for secret in secrets:
        try:
            verified = stripe.WebhookSignature.verify_header(body, header, secret, tolerance=TOLERANCE_SECONDS)
        except Exception as exc:  # any failure to verify is "not this secret", never a pass
            log.debug("stripe signature not verified with one secret: %s", type(exc).__name__)
            continue
        if verified is True:
            return
    raise InvalidSignature("no configured secret signed this body")


class StripeSource:
    name = "stripe"
    title = "Stripe"
    secrets_setting = "STRIPE_WEBHOOK_SECRETS"

    def verify(self, raw: bytes, headers: Headers, secrets: list[str]) -> str | None:
        header = headers.get("Stripe-Signature", "")
        if not header:
            raise inbox.MissingSignature("Missing Stripe-Signature header")
        verify(raw, header, secrets)
        return None  # Stripe's event id is in the body

    def parse(self, payload: Any, delivery_id: str | None) -> inbox.Event:
        try:
            event = events.parse(payload)
        except events.NotAStripeEvent as exc:
            raise inbox.NotAnEvent(str(exc)) from exc
        return inbox.Event(event.id, event.type, event.is_handled, event)

    def failed_id(self, payload: Any, delivery_id: str | None) -> str | None:
        return events.event_id_of(payload)

    @contextmanager
    def unit_of_work(self) -> Iterator[Connection]:
        # The order's rules are written with the ORM session: the claim joins its transaction.
        with transaction():
            yield db.session.connection()

    def run(self, attempt: Callable[[], inbox.Outcome]) -> inbox.Outcome:
        return attempt()

    def apply(self, conn: Connection, event: inbox.Event) -> inbox.Applied:
        return events.apply(event.data)


SOURCE = inbox.register(StripeSource())


@bp.post("/api/webhooks/stripe")
@csrf.exempt
def stripe_webhook():
    return inbox.receive(SOURCE.name)
