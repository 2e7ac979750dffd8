"""Clerk's keys: publishable-key decoding, secret-key kinds, webhook secrets, the PEM JWT key, the JWKS.

The JWKS rule (RemoteKeys): while a worker holds keys, a `kid` it does not know causes at most one
fetch per cooldown (30 s), whatever that fetch's outcome. A worker that holds no key at all (it
started during an outage, or its first fetch failed) cannot verify anyone, so it retries sooner:
1 s after the failure, then 2 s, 4 s … up to the cooldown, until a fetch succeeds. gunicorn's
post_fork prefetches the key set, so a worker normally holds keys before its first request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import threading
import time
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.serialization import load_pem_public_key

PUBLISHABLE_PREFIXES = ("pk_test_", "pk_live_")
log = logging.getLogger(__name__)


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


class RemoteKeys:
    """The instance's public keys from a JWKS URL, cached by `kid`.

    An unknown `kid` (a key rotation, or a forgery) may trigger a fetch, but at most one per
    `cooldown` seconds whatever its outcome: while Clerk is down, failures are not retried on
    every request. Until a first fetch succeeds, though, there is no key to keep anyone signed in,
    so the pause after a failure is `cold_retry` seconds instead, doubling with each failure in a
    row up to `cooldown`: a worker started during an outage sees Clerk back within a second or two
    rather than 30, for a few extra calls a minute while the outage lasts.
    The lock only guards the bookkeeping, never the network call, so a hanging
    JWKS endpoint cannot delay requests whose key is already cached; those keep working through
    an outage. A key set older than `lifespan` is refreshed in the background (a key Clerk
    removed stops working then). Only the caller that starts a fetch waits for it (up to the
    HTTP timeout); others with an unknown `kid` are refused at once rather than holding a worker.
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        cooldown: float = 30.0,
        timeout: float = 5.0,
        lifespan: float = 3600,
        cold_retry: float = 1.0,
    ):
        self.url = url
        self.cooldown = cooldown
        self.timeout = timeout
        self.lifespan = lifespan
        self.cold_retry = cold_retry
        self._headers = headers
        self._keys: dict[str, Any] = {}
        self._fetched_at = -float("inf")
        self._lock = threading.Lock()
        self._next_fetch_at = 0.0  # time.monotonic() before which no fetch starts
        self._in_flight = False
        self._cold_failures = 0  # failed fetches in a row while no key is held

    def get(self, kid: str) -> Any | None:
        """The public key for `kid`, or None when neither the cache nor a permitted fetch has it."""
        key = self._keys.get(kid)
        stale = time.monotonic() > self._fetched_at + self.lifespan
        if key is not None and not stale:
            return key
        if not self._claim_fetch():
            return key
        if key is not None:
            threading.Thread(target=self._fetch, daemon=True).start()
            return key
        self._fetch()
        return self._keys.get(kid)

    def prefetch(self) -> bool:
        """Fetch the key set now (a worker starting), unless a fetch is under way; whether keys are
        held afterwards. Never raises: a failure is logged (one line) and the lazy path retries."""
        try:
            if self._claim_fetch():
                self._fetch()
        except Exception:  # a worker must boot whatever happens here; requests retry the fetch
            log.exception("Clerk JWKS prefetch from %s failed unexpectedly", self.url)
        return bool(self._keys)

    def _claim_fetch(self) -> bool:
        """Whether the caller may fetch now: none in flight, and the pause since the last one is over."""
        with self._lock:
            if self._in_flight or time.monotonic() < self._next_fetch_at:
                return False
            self._in_flight = True
            self._next_fetch_at = time.monotonic() + self.cooldown
            return True

    def _fetch(self) -> None:
        failure = None
        try:
            response = requests.get(self.url, headers=self._headers, timeout=self.timeout)
            response.raise_for_status()
            found = {}
            for jwk in response.json().get("keys", []):
                if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) and jwk.get("kty") == "RSA":
                    found[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="RS256").key
            if not found:
                raise ValueError("no RSA keys")
            self._keys, self._fetched_at = found, time.monotonic()
        except (requests.RequestException, ValueError, TypeError, AttributeError, jwt.PyJWTError) as exc:
            # The secret key travels in a header, never in the URL or this line.
            failure = type(exc).__name__
        finally:
            with self._lock:
                self._in_flight = False
                pause = self.cooldown
                if self._keys:
                    self._cold_failures = 0
                else:
                    pause = min(self.cold_retry * 2**self._cold_failures, self.cooldown)
                    self._cold_failures = min(self._cold_failures + 1, 32)  # 2**32 s is past any cooldown
                    self._next_fetch_at = time.monotonic() + pause
        if failure is not None:
            log.warning("Clerk JWKS fetch from %s failed (%s); next try in %gs", self.url, failure, pause)
