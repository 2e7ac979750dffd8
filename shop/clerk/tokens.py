"""Clerk session tokens: how to verify them, and what a verified one proves.

The checks are those of `@clerk/backend`'s `verifyToken`, read from its source; docs/sessions.md
lists every place we differ and why. In short: RS256 only; header `typ` must be `JWT` when
present; tokens of another class signed by the same key (a non-session `cat` header, OAuth
`at+jwt`, M2M `mch_` subjects) are refused; `exp`, `nbf`, `iat` must be numbers and are checked
with a small clock skew; `sub` and `sid` are required; `iss` must be the Frontend API URL when it
is known; `azp` must be an allowed origin when present (a missing `azp` is accepted: Clerk omits it
on some navigations); `sts == "pending"` (a session with a task to finish) is not signed in: it
raises PendingSession, so the request layer can send the shopper to finish the task. A bad token,
whatever its bytes, raises InvalidToken (ExpiredToken when only its time is wrong, PendingSession
when only a task is left) and nothing else. Which token a request carries, and what Clerk decides
from it, is shop.clerk.request_auth.

A verified token is remembered until it expires, so a token seen again costs a dict lookup; keys
come from CLERK_JWT_KEY (no network) or a JWKS (shop.clerk.keys.RemoteKeys).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from jwt.algorithms import RSAAlgorithm

from shop.clerk import keys

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
MAX_TOKEN_LENGTH = 8 * 1024
# Header `cat` values (@clerk/backend tokens/jwtCategories.ts): a session token, or "no category
# information" on instances that stamp every class alike. Anything else is another class of JWT.
SESSION_CATEGORIES = ("cl_B7d4PD111AAA", "cl_I7d4PD111III")  # a tuple: `in` must not hash a JSON list
MACHINE_SUBJECT_PREFIX = "mch_"  # M2M tokens; OAuth access tokens are told by `typ: at+jwt`
MAX_ID_LENGTH = 64
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)

# Clerk's TokenVerificationErrorReason values, so logs and decisions read like Clerk's.
EXPIRED = "token-expired"
NOT_ACTIVE_YET = "token-not-active-yet"
IAT_IN_THE_FUTURE = "token-iat-in-the-future"
INVALID = "token-invalid"
# Ours: Clerk has no reason string for it (its SDKs mark the auth object `pending` and, by default,
# treat it as signed out).
PENDING = "session-pending"


class InvalidToken(Exception):
    """Not a usable session token. `reason` is Clerk's; the message says why (debug logs only)."""

    def __init__(self, message: str, reason: str = INVALID):
        super().__init__(message)
        self.reason = reason


class ExpiredToken(InvalidToken):
    """Well signed but outside its time window (expired, not yet valid, issued in the future):
    the browser may still be signed in and a fresh token would do. Clerk hands these off."""


class PendingSession(InvalidToken):
    """A genuine session token whose session has a task to finish first (`sts: "pending"`: reset a
    password, set up MFA…). Not signed in; Clerk's sign-in component shows the task
    (shop.auth.session sends page navigations there). Reason PENDING."""

    def __init__(self, message: str = "the session has pending tasks"):
        super().__init__(message, PENDING)


@dataclass(frozen=True, slots=True)
class Session:
    user_id: str
    session_id: str
    expires_at: float
    issued_at: float
    claims: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DecodedToken:
    """A JWT split and parsed, nothing verified yet."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json accepts NaN/Infinity; JSON (and Clerk) do not


def _b64url_json(part: str) -> Any:
    if not _BASE64URL.fullmatch(part):
        raise ValueError("not base64url")
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)), parse_constant=_reject_constant)


def decode(token: str) -> DecodedToken | None:
    """The token's header and claims (both JSON objects), or None when it is not a JWT at all."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = _b64url_json(parts[0]), _b64url_json(parts[1])
        if not _BASE64URL.fullmatch(parts[2]):
            return None
        signature = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return DecodedToken(header, claims, f"{parts[0]}.{parts[1]}".encode(), signature)


def is_number(value: Any) -> TypeGuard[int | float]:
    """A JSON number (JavaScript's `typeof … === "number"`): not a bool, not a numeric string."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def is_other_token_class(decoded: DecodedToken) -> bool:
    """A JWT the instance key signed that is not a session token: M2M, OAuth access token, JWT template."""
    header, sub = decoded.header, decoded.claims.get("sub")
    return (
        ("cat" in header and header["cat"] not in SESSION_CATEGORIES)
        or header.get("typ") in ("at+jwt", "application/at+jwt")
        or (isinstance(sub, str) and sub.startswith(MACHINE_SUBJECT_PREFIX))
    )


def check_header(header: Mapping[str, Any]) -> None:
    """`typ` JWT when present (OAuth access tokens say `at+jwt`), RS256, a session-token `cat`."""
    if "typ" in header and header["typ"] != "JWT":
        raise InvalidToken(f"typ {header['typ']!r} is not JWT")
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"algorithm {header.get('alg')!r} is not {ALGORITHM}", "token-invalid-algorithm")
    if "cat" in header and header["cat"] not in SESSION_CATEGORIES:
        raise InvalidToken("not a session token (cat)")


def verify_signature(decoded: DecodedToken, key: Any) -> None:
    if not _RS256.verify(decoded.signing_input, key, decoded.signature):
        raise InvalidToken("bad signature", "token-invalid-signature")


def _string_id(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise InvalidToken(f"bad {name}", "token-verification-failed")
    return value


class SessionVerifier:
    def __init__(
        self,
        *,
        pem_key: str | None = None,
        jwks_url: str | None = None,
        jwks_headers: Mapping[str, str] | None = None,
        issuer: str | None = None,
        authorized_parties: list[str] | None = None,
        clock_skew: int = 5,
        jwks_cooldown: float = 30.0,
        cache_size: int = 10_000,
    ):
        if not pem_key and not jwks_url:
            raise ValueError("a session verifier needs a PEM key or a JWKS URL")
        self._pem_key = _load_pem(pem_key) if pem_key else None
        self.remote_keys = (
            keys.RemoteKeys(jwks_url, dict(jwks_headers or {}), cooldown=jwks_cooldown)
            if jwks_url and not pem_key
            else None
        )
        self.issuer = issuer
        self.authorized_parties = set(authorized_parties or [])
        self.clock_skew = clock_skew
        self._cache: OrderedDict[str, Session] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def verify(self, token: str, *, clock_skew: float | None = None) -> Session:
        """The session a token proves, or InvalidToken (ExpiredToken when only its time is wrong).
        `clock_skew` widens the time checks for one call (Clerk does so for a handshake's token in
        development, where laptop clocks drift); such a result is not cached."""
        now = time.time()
        cached = self._cache.get(token) if clock_skew is None else None
        if cached is not None:
            if cached.expires_at > now - self.clock_skew:
                return cached
            with self._lock:
                self._cache.pop(token, None)
            raise ExpiredToken("expired", EXPIRED)
        session = self._verify_uncached(token, self.clock_skew if clock_skew is None else clock_skew)
        if clock_skew is None:
            with self._lock:
                self._cache[token] = session
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return session

    def signing_key(self, header: Mapping[str, Any]) -> Any:
        if self.remote_keys is None:  # the constructor sets exactly one of the two
            return self._pem_key
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 200:
            raise InvalidToken("no kid", "jwk-failed-to-resolve")
        key = self.remote_keys.get(kid)
        if key is None:
            raise InvalidToken("no key for this kid", "jwk-remote-missing")
        return key

    def _verify_uncached(self, token: str, clock_skew: float) -> Session:
        decoded = decode(token)
        if decoded is None:
            raise InvalidToken("not a JWT")
        check_header(decoded.header)
        if is_other_token_class(decoded):
            raise InvalidToken("not a session token")
        verify_signature(decoded, self.signing_key(decoded.header))
        return self._check_claims(decoded.claims, clock_skew)

    def _check_claims(self, claims: dict[str, Any], clock_skew: float) -> Session:
        """In @clerk/backend's order (sub, azp, iss, exp, nbf, iat), then what a session needs."""
        user_id = _string_id(claims, "sub")
        azp = claims.get("azp")
        allowed = not self.authorized_parties or (isinstance(azp, str) and azp in self.authorized_parties)
        if azp is not None and not allowed:
            raise InvalidToken(f"azp {azp!r} is not an authorized party", "token-invalid-authorized-parties")
        if self.issuer and claims.get("iss") != self.issuer:
            raise InvalidToken("wrong issuer", "token-invalid-issuer")
        now = time.time()
        if not is_number(claims.get("exp")):
            raise InvalidToken("exp is not a number", "token-verification-failed")
        if claims["exp"] <= now - clock_skew:
            raise ExpiredToken("expired", EXPIRED)
        if "nbf" in claims:
            if not is_number(claims["nbf"]):
                raise InvalidToken("nbf is not a number", "token-verification-failed")
            if claims["nbf"] > now + clock_skew:
                raise ExpiredToken("not valid yet", NOT_ACTIVE_YET)
        if not is_number(claims.get("iat")):  # Clerk lets a missing iat pass; `__client_uat` needs it
            raise InvalidToken("iat is not a number", "token-verification-failed")
        if claims["iat"] > now + clock_skew:
            raise ExpiredToken("issued in the future", IAT_IN_THE_FUTURE)
        session_id = _string_id(claims, "sid")
        if claims.get("sts") == "pending":
            raise PendingSession()
        return Session(user_id, session_id, claims["exp"], claims["iat"], claims)


def _load_pem(pem: str | None) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(keys.normalize_pem(pem or "").encode())


def verifier_from_config(config: Mapping[str, Any]) -> SessionVerifier | None:
    """The verifier for this app's settings; None when nothing can verify tokens (no Clerk configured)."""
    publishable_key = config.get("CLERK_PUBLISHABLE_KEY")
    issuer = config.get("CLERK_ISSUER") or (keys.frontend_api_url(publishable_key) if publishable_key else None)
    common = {
        "issuer": issuer,
        "authorized_parties": config.get("CLERK_AUTHORIZED_PARTIES") or [],
        "clock_skew": config.get("CLERK_CLOCK_SKEW_SECONDS", 5),
        "jwks_cooldown": config.get("CLERK_JWKS_COOLDOWN_SECONDS", 30),
    }
    if config.get("CLERK_JWT_KEY"):
        return SessionVerifier(pem_key=config["CLERK_JWT_KEY"], **common)
    if config.get("CLERK_SECRET_KEY"):
        return SessionVerifier(
            jwks_url=f"{config['CLERK_API_URL']}/jwks",
            jwks_headers={"Authorization": f"Bearer {config['CLERK_SECRET_KEY']}"},
            **common,
        )
    if issuer:
        return SessionVerifier(jwks_url=f"{issuer}/.well-known/jwks.json", **common)
    return None
