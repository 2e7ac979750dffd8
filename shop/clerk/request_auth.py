"""Which session token a request carries, and what Clerk decides from it: `@clerk/backend`'s
`authenticateRequest`, rule for rule, short of the handshake itself (shop.clerk.handshake).

A token in `Authorization` is judged alone; a cookie token with `__client_uat`, under the names
clerk-js writes for this instance (`__session` or `__session_<suffix>`). The token itself is
verified by shop.clerk.tokens. docs/sessions.md lists every place we differ from Clerk and why.
Nothing here raises for a bad request: whatever bytes arrive, the answer is "signed out".
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shop.clerk.headers import HeaderLookup
from shop.clerk.tokens import (
    EXPIRED,
    IAT_IN_THE_FUTURE,
    INVALID,
    NOT_ACTIVE_YET,
    ExpiredToken,
    InvalidToken,
    Session,
    SessionVerifier,
    decode,
    is_number,
    is_other_token_class,
)

log = logging.getLogger(__name__)

SESSION_COOKIE = "__session"
CLIENT_UAT_COOKIE = "__client_uat"


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
    return value if is_number(value) else 0


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
        if suffixed_uat != "0" and uat == "0" and is_number(exp) and exp <= int(time.time()):
            return False
    return not (not suffixed_uat and suffixed_session)


def instance_cookie_name(name: str, cookies: Mapping[str, str], instance: Instance) -> str:
    """`name`, or `name_<suffix>` when the suffixed cookies speak for this instance."""
    return f"{name}_{instance.cookie_suffix}" if uses_suffixed_cookies(cookies, instance) else name


def session_cookie(cookies: Mapping[str, str], instance: Instance) -> str | None:
    return _cookie(cookies, instance_cookie_name(SESSION_COOKIE, cookies, instance))


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
    if is_number(iat) and iat < uat:
        # The client changed (signed in again, switched session) after this token was minted.
        return RequestAuth(None, ISSUED_BEFORE_CLIENT_UAT, needs_refresh=True, token=token, client_uat=uat)
    return _verified(verifier, token, method, uat)
