"""Svix webhook signatures, verified by the `svix` library on the raw request bytes."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from svix.webhooks import Webhook, WebhookVerificationError

from shop.clerk.headers import HeaderLookup

SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")


class MissingHeaders(Exception):
    pass


class InvalidSignature(Exception):
    pass


@lru_cache(maxsize=8)
def _verifiers(secrets: tuple[str, ...]) -> tuple[Webhook, ...]:
    return tuple(Webhook(secret) for secret in secrets)


def svix_headers(headers: HeaderLookup) -> dict[str, str]:
    """The three Svix headers, or MissingHeaders if any is absent or empty."""
    found = {name: headers.get(name) or "" for name in SVIX_HEADERS}
    if not all(found.values()):
        raise MissingHeaders()
    return found


def verify(raw_body: bytes, headers: HeaderLookup, secrets: Iterable[str]) -> str:
    """Check the delivery against every configured secret (rotation); return its svix-id.

    svix 2.x returns None from verify() and raises WebhookVerificationError for a wrong or
    stale signature, but ValueError (binascii.Error, UnicodeDecodeError) for a malformed
    signature header or a body that is not UTF-8. All of those are the sender's fault.
    """
    found = svix_headers(headers)
    for verifier in _verifiers(tuple(secrets)):
        try:
            verifier.verify(raw_body, found)
        except (WebhookVerificationError, ValueError):
            continue
        return found["svix-id"]
    raise InvalidSignature()
