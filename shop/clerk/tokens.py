"""Clerk session tokens: where to find them in a request, and how to verify them strictly.

RS256 only; `exp`, `nbf`, `iat` with a small clock skew; `sub` and `sid` required; `iss` must
be the Frontend API URL when it is known; `azp` must be an allowed origin when present (a
missing `azp` is accepted: Clerk omits it on some navigations); `sts == "pending"` is signed
out. A verified token is remembered until it expires, so a token seen again costs a dict
lookup; keys come from CLERK_JWT_KEY (no network) or a JWKS that is cached and refetched at
most once per cooldown on an unknown `kid`, so forged tokens cannot make us hammer Clerk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from shop.clerk import keys

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
MAX_TOKEN_LENGTH = 8 * 1024
SESSION_COOKIE = "__session"
CLIENT_UAT_COOKIE = "__client_uat"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid"]


class InvalidToken(Exception):
    """Not a usable session token. The message says why (for debug logs, never for users)."""


class ExpiredToken(InvalidToken):
    """Well signed but expired: the browser may still be signed in and need a fresh token."""


@dataclass(frozen=True, slots=True)
class Session:
    user_id: str
    session_id: str
    expires_at: int
    issued_at: int
    claims: Mapping[str, Any]


def _cookie(cookies: Mapping[str, str], name: str, suffix: str | None) -> str | None:
    """Newer clerk-js writes `<name>_<suffix>` beside `<name>`; the suffixed one is this instance's."""
    if suffix and cookies.get(f"{name}_{suffix}"):
        return cookies[f"{name}_{suffix}"]
    return cookies.get(name) or None


def token_from_request(headers: Mapping[str, str], cookies: Mapping[str, str], suffix: str | None) -> str | None:
    """`Authorization: Bearer` first, else the session cookie."""
    authorization = headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return _cookie(cookies, SESSION_COOKIE, suffix)


def client_uat(cookies: Mapping[str, str], suffix: str | None) -> int:
    """When the signed-in client last changed (Unix seconds); 0 when signed out or unreadable."""
    value = _cookie(cookies, CLIENT_UAT_COOKIE, suffix) or "0"
    return int(value) if value.isdigit() and len(value) < 12 else 0


@dataclass(frozen=True, slots=True)
class RequestAuth:
    """Clerk's decision for one request: who is signed in, or whether clerk-js could refresh the token."""

    session: Session | None
    # Signed out for now, but the browser is still signed in at Clerk (`__client_uat > 0`) and its token
    # is expired, missing, or older than the client's last change: a fresh token would sign it in.
    may_refresh: bool = False


def authenticate_request(
    verifier: SessionVerifier, headers: Mapping[str, str], cookies: Mapping[str, str], suffix: str | None
) -> RequestAuth:
    """Decide as Clerk's own server SDK does; never raises for a bad token."""
    token = token_from_request(headers, cookies, suffix)
    client_updated_at = client_uat(cookies, suffix)
    stale = token is None
    session = None
    if token is not None:
        try:
            session = verifier.verify(token)
        except ExpiredToken:
            stale = True
        except InvalidToken as exc:
            log.debug("session token refused: %s", exc)
    if session is not None and "Authorization" not in headers:
        if CLIENT_UAT_COOKIE in cookies and client_updated_at == 0:
            session = None  # signed out in another tab: the lingering cookie proves nothing
        elif session.issued_at < client_updated_at:
            session, stale = None, True  # the client changed since this token was minted
    return RequestAuth(session, may_refresh=session is None and stale and client_updated_at > 0)


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
        self._jwks = (
            jwt.PyJWKClient(
                jwks_url,
                headers=dict(jwks_headers or {}),
                lifespan=3600,
                timeout=5,
                cooldown_duration=jwks_cooldown,
            )
            if jwks_url and not pem_key
            else None
        )
        self.issuer = issuer
        self.authorized_parties = set(authorized_parties or [])
        self.clock_skew = clock_skew
        self._cache: OrderedDict[str, Session] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def verify(self, token: str) -> Session:
        """The session a token proves, or InvalidToken (ExpiredToken when only its time has passed)."""
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None:
            if now <= cached.expires_at + self.clock_skew:
                return cached
            with self._lock:
                self._cache.pop(token, None)
            raise ExpiredToken("expired")
        session = self._verify_uncached(token)
        with self._lock:
            self._cache[token] = session
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return session

    def _signing_key(self, token: str) -> Any:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise InvalidToken(f"malformed: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not {ALGORITHM}")
        if self._pem_key is not None:
            return self._pem_key
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 200:
            raise InvalidToken("no kid")
        try:
            return self._jwks.get_signing_key(kid).key
        except jwt.PyJWKClientError as exc:
            raise InvalidToken(f"no key for kid: {exc}") from exc

    def _verify_uncached(self, token: str) -> Session:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidToken("not a JWT")
        key = self._signing_key(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                leeway=self.clock_skew,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS, "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ExpiredToken("expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        for claim in ("sub", "sid"):
            if not isinstance(claims.get(claim), str) or not claims[claim] or len(claims[claim]) > 64:
                raise InvalidToken(f"bad {claim}")
        azp = claims.get("azp")
        if azp is not None and self.authorized_parties and azp.rstrip("/") not in self.authorized_parties:
            raise InvalidToken(f"azp {azp!r} is not an authorized party")
        if claims.get("sts") == "pending":
            raise InvalidToken("the session has pending tasks")
        return Session(
            user_id=claims["sub"],
            session_id=claims["sid"],
            expires_at=int(claims["exp"]),
            issued_at=int(claims["iat"]),
            claims=claims,
        )


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
