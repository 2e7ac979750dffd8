"""Clerk session tokens: where to find them in a request, how to verify them, and what they decide.

The checks are those of `@clerk/backend` (`verifyToken`, and `authenticateRequest` for which token
a request carries), read from its source; docs/sessions.md lists every place we differ and why.
In short: RS256 only; header `typ` must be `JWT` when present; tokens of another class signed by
the same key (a non-session `cat` header, OAuth `at+jwt`, M2M `mch_` subjects) are refused;
`exp`, `nbf`, `iat` must be numbers and are checked with a small clock skew; `sub` and `sid` are
required; `iss` must be the Frontend API URL when it is known; `azp` must be an allowed origin when
present (a missing `azp` is accepted: Clerk omits it on some navigations); `sts == "pending"` is
signed out. Nothing here raises for a bad token: whatever bytes arrive, the answer is "signed out".

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
from shop.clerk.headers import HeaderLookup

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
MAX_TOKEN_LENGTH = 8 * 1024
SESSION_COOKIE = "__session"
CLIENT_UAT_COOKIE = "__client_uat"
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


class InvalidToken(Exception):
    """Not a usable session token. `reason` is Clerk's; the message says why (debug logs only)."""

    def __init__(self, message: str, reason: str = INVALID):
        super().__init__(message)
        self.reason = reason


class ExpiredToken(InvalidToken):
    """Well signed but outside its time window (expired, not yet valid, issued in the future):
    the browser may still be signed in and a fresh token would do. Clerk hands these off."""


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


def _is_number(value: Any) -> TypeGuard[int | float]:
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
        if not _is_number(claims.get("exp")):
            raise InvalidToken("exp is not a number", "token-verification-failed")
        if claims["exp"] <= now - clock_skew:
            raise ExpiredToken("expired", EXPIRED)
        if "nbf" in claims:
            if not _is_number(claims["nbf"]):
                raise InvalidToken("nbf is not a number", "token-verification-failed")
            if claims["nbf"] > now + clock_skew:
                raise ExpiredToken("not valid yet", NOT_ACTIVE_YET)
        if not _is_number(claims.get("iat")):  # Clerk lets a missing iat pass; `__client_uat` needs it
            raise InvalidToken("iat is not a number", "token-verification-failed")
        if claims["iat"] > now + clock_skew:
            raise ExpiredToken("issued in the future", IAT_IN_THE_FUTURE)
        session_id = _string_id(claims, "sid")
        if claims.get("sts") == "pending":
            raise InvalidToken("the session has pending tasks")
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


# --- which token a request carries, and what Clerk decides from it ----------------------------------------


@dataclass(frozen=True, slots=True)
class Instance:
    """What the request rules need to know of the Clerk instance."""

    frontend_api_host: str | None = None  # tokens whose `iss` names another instance are not ours
    cookie_suffix: str | None = None  # clerk-js's `__session_<suffix>`; None without a publishable key
    production: bool = False


def bearer_token(authorization: str | None) -> str | None:
    """@clerk/backend's reading of `Authorization`: `Bearer <token>`, or a bare value with no scheme.
    Any other scheme (Basic on a password-protected staging site, …) carries no Clerk token."""
    if not authorization:
        return None
    scheme, _, rest = authorization.partition(" ")
    token = rest.split(" ", 1)[0]
    if not token:
        return scheme or None
    return token if scheme == "Bearer" else None


def _cookie(cookies: Mapping[str, str], name: str) -> str | None:
    return cookies.get(name) or None


def _js_int(value: str | None) -> int:
    """`Number.parseInt(value) || 0`, as Clerk reads `__client_uat`."""
    match = re.match(r"\s*([+-]?)([0-9]+)", value or "")
    if not match:
        return 0
    sign, digits = match.groups()
    if len(digits) > 18:  # JavaScript reads it as a huge number (Infinity past 309 digits); past any time
        return -(2**63) if sign == "-" else 2**63
    return int(sign + digits)


def _number_or_zero(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    return value if _is_number(value) else 0


def uses_suffixed_cookies(cookies: Mapping[str, str], instance: Instance) -> bool:
    """Which of `__session`/`__session_<suffix>` (and `__client_uat`…) speak for this instance:
    @clerk/backend's `usesSuffixedCookies`, rule for rule. Another instance on the same domain
    (localhost, a shared parent domain) writes the unsuffixed ones too."""
    if not instance.cookie_suffix:
        return False
    suffixed_uat = _cookie(cookies, f"{CLIENT_UAT_COOKIE}_{instance.cookie_suffix}")
    uat = _cookie(cookies, CLIENT_UAT_COOKIE)
    suffixed_session = _cookie(cookies, f"{SESSION_COOKIE}_{instance.cookie_suffix}")
    session = _cookie(cookies, SESSION_COOKIE)
    decoded = decode(session) if session else None
    if session:
        issuer = decoded.claims.get("iss") if decoded else None
        if not issuer:
            return False  # a malformed cookie: answer signed out from it rather than hand off
        if not isinstance(issuer, str) or re.sub(r"https?://", "", issuer, flags=re.I) != instance.frontend_api_host:
            return True  # the unsuffixed cookie belongs to another instance
    if not suffixed_uat and not suffixed_session:
        return False
    decoded_suffixed = decode(suffixed_session) if suffixed_session else None
    session_iat = _number_or_zero(decoded.claims, "iat") if decoded else 0
    suffixed_iat = _number_or_zero(decoded_suffixed.claims, "iat") if decoded_suffixed else 0
    if suffixed_uat != "0" and uat != "0" and session_iat > suffixed_iat:
        return False  # both signed in, the unsuffixed token is newer
    if suffixed_uat == "0" and uat != "0":
        return False  # older clerk-js wrote only the unsuffixed ones
    if not instance.production and decoded_suffixed is not None:
        exp = decoded_suffixed.claims.get("exp")
        if suffixed_uat != "0" and uat == "0" and _is_number(exp) and exp <= int(time.time()):
            return False
    return not (not suffixed_uat and suffixed_session)


def instance_cookie_name(name: str, cookies: Mapping[str, str], instance: Instance) -> str:
    """`name`, or `name_<suffix>` when the suffixed cookies speak for this instance."""
    return f"{name}_{instance.cookie_suffix}" if uses_suffixed_cookies(cookies, instance) else name


def session_cookie(cookies: Mapping[str, str], instance: Instance) -> str | None:
    return _cookie(cookies, instance_cookie_name(SESSION_COOKIE, cookies, instance))


def client_uat(cookies: Mapping[str, str], instance: Instance) -> int:
    """When the signed-in client last changed (Unix seconds); 0 when signed out or unreadable."""
    return _js_int(_cookie(cookies, instance_cookie_name(CLIENT_UAT_COOKIE, cookies, instance)))


# Clerk's AuthErrorReason values for the hand-off cases.
NO_CLIENT_UAT = "session-token-but-no-client-uat"
NO_SESSION_COOKIE = "client-uat-but-no-session-token"
ISSUED_BEFORE_CLIENT_UAT = "session-token-iat-before-client-uat"
SIGNED_OUT = "session-token-and-uat-missing"
OTHER_CLASS = "token-type-mismatch"


@dataclass(frozen=True, slots=True)
class RequestAuth:
    """Clerk's decision for one request, before any handshake: who is signed in; or, when not,
    why (Clerk's reason) and whether a fresh token could sign the browser in (`needs_refresh`)."""

    session: Session | None
    reason: str | None = None
    needs_refresh: bool = False
    token: str | None = None  # the token the request carried (cookie or header)
    client_uat: int = 0


def _refresh_reason(error: ExpiredToken, method: str) -> str:
    if error.reason == EXPIRED:
        # Clerk's `__refresh` cookie refresh is not used (docs/sessions.md), so never "eligible".
        why = "non-eligible-no-refresh-cookie" if method == "GET" else "non-eligible-non-get"
        return f"session-token-expired-refresh-{why}"
    return {NOT_ACTIVE_YET: "session-token-nbf", IAT_IN_THE_FUTURE: "session-token-iat-in-the-future"}[error.reason]


def _verified(verifier: SessionVerifier, token: str, method: str, uat: int) -> RequestAuth:
    try:
        return RequestAuth(verifier.verify(token), token=token, client_uat=uat)
    except ExpiredToken as exc:
        return RequestAuth(None, _refresh_reason(exc, method), needs_refresh=True, token=token, client_uat=uat)
    except InvalidToken as exc:
        log.debug("session token refused: %s", exc)
        return RequestAuth(None, exc.reason, token=token, client_uat=uat)


def authenticate_request(
    verifier: SessionVerifier,
    method: str,
    headers: HeaderLookup,
    cookies: Mapping[str, str],
    instance: Instance,
) -> RequestAuth:
    """@clerk/backend's `authenticateRequest` for a session token, short of the handshake itself
    (shop.clerk.handshake resolves and starts those). A token in `Authorization` is judged alone;
    a cookie token is judged with `__client_uat`. Never raises, whatever the request carries."""
    header_token = bearer_token(headers.get("Authorization"))
    if header_token is not None:
        decoded = decode(header_token)
        if decoded is not None and is_other_token_class(decoded):
            return RequestAuth(None, OTHER_CLASS, token=header_token)
        return _verified(verifier, header_token, method, 0)

    suffix = f"_{instance.cookie_suffix}" if uses_suffixed_cookies(cookies, instance) else ""  # once: it decodes
    uat_name = CLIENT_UAT_COOKIE + suffix
    token = _cookie(cookies, SESSION_COOKIE + suffix)
    uat = _js_int(_cookie(cookies, uat_name))
    if not token:
        if not uat:
            return RequestAuth(None, SIGNED_OUT)
        return RequestAuth(None, NO_SESSION_COOKIE, needs_refresh=True, client_uat=uat)
    if not uat:
        if uat_name not in cookies:
            # Deliberately not Clerk's rule (docs/sessions.md): with no `__client_uat` at all (a script,
            # an integration that copies only `__session`), a valid token signs in on its own.
            judged = _verified(verifier, token, method, 0)
            if judged.session is not None:
                return judged
        # Signed out in another tab (`__client_uat=0`): the lingering token proves nothing.
        return RequestAuth(None, NO_CLIENT_UAT, needs_refresh=True, token=token)
    decoded = decode(token)
    if decoded is None:
        return RequestAuth(None, INVALID, token=token, client_uat=uat)
    if is_other_token_class(decoded):
        return RequestAuth(None, OTHER_CLASS, token=token, client_uat=uat)
    iat = decoded.claims.get("iat")
    if _is_number(iat) and iat < uat:
        # The client changed (signed in again, switched session) after this token was minted.
        return RequestAuth(None, ISSUED_BEFORE_CLIENT_UAT, needs_refresh=True, token=token, client_uat=uat)
    return _verified(verifier, token, method, uat)
