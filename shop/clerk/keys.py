"""Clerk's keys: publishable-key decoding, secret-key kinds, webhook secrets, the PEM JWT key."""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives.serialization import load_pem_public_key

PUBLISHABLE_PREFIXES = ("pk_test_", "pk_live_")


class InvalidKey(ValueError):
    pass


def frontend_api_host(publishable_key: str) -> str:
    """The Frontend API host encoded in a publishable key: `pk_<env>_` + base64(`<host>$`), unpadded."""
    prefix = next((p for p in PUBLISHABLE_PREFIXES if publishable_key.startswith(p)), None)
    if prefix is None:
        raise InvalidKey("a publishable key starts with pk_test_ or pk_live_")
    encoded = publishable_key[len(prefix) :]
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidKey("the publishable key is not valid base64") from exc
    if not decoded.endswith("$") or len(decoded) < 2 or "$" in decoded[:-1]:
        raise InvalidKey("the publishable key does not encode a Frontend API host")
    return decoded[:-1]


def frontend_api_url(publishable_key: str) -> str:
    """The session tokens' `iss`: `https://<frontend api host>`."""
    return f"https://{frontend_api_host(publishable_key)}"


def cookie_suffix(publishable_key: str) -> str:
    """clerk-js's suffix for `__session_<suffix>`: first 8 chars of urlsafe-b64(SHA-1(key))."""
    digest = hashlib.sha1(publishable_key.encode(), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).decode()[:8]


def is_live(key: str) -> bool:
    return key.startswith(("pk_live_", "sk_live_"))


def check_secret_key(secret_key: str) -> None:
    if not secret_key.startswith(("sk_test_", "sk_live_")):
        raise InvalidKey("a secret key starts with sk_test_ or sk_live_")


def check_webhook_secret(secret: str) -> None:
    body = secret.removeprefix("whsec_")
    try:
        if not base64.b64decode(body, validate=True):
            raise InvalidKey("the webhook signing secret is empty")
    except binascii.Error as exc:
        raise InvalidKey("a webhook signing secret is whsec_ followed by base64") from exc


def normalize_pem(value: str) -> str:
    """A PEM pasted into .env often carries literal `\\n`: make them real newlines, and check it parses."""
    pem = value.strip().strip('"').replace("\\n", "\n")
    try:
        load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise InvalidKey("it is not a PEM public key (-----BEGIN PUBLIC KEY----- …)") from exc
    return pem
