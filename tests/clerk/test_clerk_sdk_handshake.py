"""Our handshake against Clerk's (`@clerk/backend` 3.25.0 `authenticateRequest` in node), dev and prod keys.

Both sides talk to the same Backend API, a real HTTP server on 127.0.0.1 answering
`/v1/clients/handshake_payload` and `/v1/jwks`; both decide the same requests. Status, redirect
target and query, and the cookies set must agree, except the documented choices below.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug import Response
from werkzeug.http import parse_cookie

from shop.clerk import handshake, keys, request_auth, tokens
from shop.clerk.api import ClerkAPI
from tests.clerk.clerk_sdk import require_clerk_backend, run_oracle, sign
from tests.conftest import TOKENS
from tests.support import TEST_FRONTEND_API, TEST_ISSUER, TEST_PUBLISHABLE_KEY

LIVE_KEY = "pk_live_" + keys.base64.b64encode(f"{TEST_FRONTEND_API}$".encode()).decode().rstrip("=")
SECRETS = {LIVE_KEY: "sk_live_handshake", TEST_PUBLISHABLE_KEY: "sk_test_handshake"}
PAGE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document"}
API = {"Accept": "application/json"}
DOCUMENTED = {
    "dev: no dev browser, valid cookie (api)": "signed in here: we only send page navigations through the handshake "
    "to get a dev-browser token; Clerk signs out any development request without one",
    "dev: handshake token by another key": "signed out here with a log line; Clerk throws (a 500 in its frameworks)",
}


class BackendAPI:
    """Clerk's Backend API for both sides: handshake payloads by nonce, and the instance's JWKS."""

    def __init__(self, httpserver):
        self.payloads: dict[str, list[str]] = {}
        httpserver.expect_request("/v1/clients/handshake_payload").respond_with_handler(self.payload)
        httpserver.expect_request("/v1/jwks").respond_with_json({"keys": [TOKENS.jwk()]})
        self.url = httpserver.url_for("").rstrip("/")

    def payload(self, request):
        if request.headers.get("Authorization") not in {f"Bearer {secret}" for secret in SECRETS.values()}:
            return Response(json.dumps({"errors": [{"code": "clerk_key_invalid", "message": "bad key"}]}), 401)
        directives = self.payloads.get(request.args.get("nonce", ""))
        if directives is None:
            body = {"errors": [{"code": "resource_not_found", "message": "not found"}], "clerk_trace_id": "t"}
            return Response(json.dumps(body), 404, content_type="application/json")
        return Response(json.dumps({"directives": directives}), content_type="application/json")


@pytest.fixture
def backend(httpserver):
    require_clerk_backend()
    return BackendAPI(httpserver)


def session_directive(token: str, name: str = "__session") -> str:
    return f"{name}={token}; Path=/; SameSite=Lax"


def shapes(backend: BackendAPI) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, publishable key, request) for every case."""
    now = int(time.time())
    suffix_live, suffix_test = keys.cookie_suffix(LIVE_KEY), keys.cookie_suffix(TEST_PUBLISHABLE_KEY)
    fresh, expired = TOKENS.mint("user_fresh"), TOKENS.mint("user_fresh", exp=now - 60, iat=now - 120)
    drifted = TOKENS.mint("user_drift", iat=now - 4000, nbf=now - 4000, exp=now - 3600)
    uat = str(now - 300)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    directives = [session_directive(fresh), f"__client_uat={now}; Path=/; Max-Age=31536000; SameSite=Lax"]
    backend.payloads.update(
        {
            "nonce_ok": directives,
            "nonce_signed_out": ["__session=; Path=/; Max-Age=0", "__client_uat=0; Path=/; Max-Age=31536000"],
            "nonce_expired": [session_directive(expired)],
            "nonce_drifted": [session_directive(drifted)],
            "nonce_suffixed": [
                session_directive(fresh, f"__session_{suffix_live}"),
                f"__client_uat_{suffix_live}={now}",
            ],
            "nonce_two_sessions": [session_directive(expired), session_directive(fresh)],
            "nonce_dev": [session_directive(fresh), f"__client_uat={now}", "__clerk_db_jwt=dvb_new; Path=/"],
        }
    )
    header = {"alg": "RS256", "kid": TOKENS.kid, "typ": "JWT"}
    handshake_token = sign(TOKENS.private_key, header, {"handshake": directives})
    forged_handshake = sign(other_key, header, {"handshake": directives})
    template_handshake = sign(TOKENS.private_key, {**header, "cat": "cl_B7d4PD222AAA"}, {"handshake": directives})
    oauth_handshake = sign(TOKENS.private_key, {**header, "typ": "at+jwt"}, {"handshake": directives})

    def req(url: str, cookies: str = "", headers: dict[str, str] | None = None, method: str = "GET"):
        merged = {**(headers if headers is not None else PAGE)}
        if cookies:
            merged["Cookie"] = cookies
        return {"url": f"http://localhost{url}", "method": method, "headers": merged}

    live, dev = LIVE_KEY, TEST_PUBLISHABLE_KEY
    db = "__clerk_db_jwt=dvb_browser"
    return [
        ("prod: nonce in query", live, req("/orders?__clerk_handshake_nonce=nonce_ok")),
        ("prod: nonce in cookie", live, req("/orders", "__clerk_handshake_nonce=nonce_ok")),
        ("prod: nonce unknown", live, req("/orders", "__clerk_handshake_nonce=nonce_unknown")),
        ("prod: nonce says signed out", live, req("/orders", "__clerk_handshake_nonce=nonce_signed_out")),
        ("prod: nonce gives an expired token", live, req("/orders", "__clerk_handshake_nonce=nonce_expired")),
        (
            "prod: nonce, expired token, own cookies expired",
            live,
            req("/orders", f"__clerk_handshake_nonce=nonce_expired; __session={expired}; __client_uat={uat}"),
        ),
        ("prod: nonce gives suffixed cookies", live, req("/orders", "__clerk_handshake_nonce=nonce_suffixed")),
        ("prod: nonce gives two session cookies", live, req("/orders", "__clerk_handshake_nonce=nonce_two_sessions")),
        ("prod: nonce on a POST", live, req("/cart/add", "__clerk_handshake_nonce=nonce_ok", API, "POST")),
        ("prod: nonce on an API call", live, req("/api/me", "__clerk_handshake_nonce=nonce_ok", API)),
        (
            "prod: nonce beside a Bearer token",
            live,
            req("/api/me", "__clerk_handshake_nonce=nonce_ok", {**API, "Authorization": f"Bearer {expired}"}),
        ),
        (
            "prod: nonce with the loop counter at 3",
            live,
            req("/orders", "__clerk_handshake_nonce=nonce_ok; __clerk_redirect_count=3"),
        ),
        ("prod: handshake token in query", live, req(f"/orders?__clerk_handshake={handshake_token}")),
        ("prod: handshake token in cookie", live, req("/orders", f"__clerk_handshake={handshake_token}")),
        (
            "prod: handshake token by another key",
            live,
            req("/orders", f"__clerk_handshake={forged_handshake}; __session={expired}; __client_uat={uat}"),
        ),
        ("prod: handshake token of a JWT template", live, req("/orders", f"__clerk_handshake={template_handshake}")),
        ("prod: handshake token typ at+jwt", live, req("/orders", f"__clerk_handshake={oauth_handshake}")),
        (
            "prod: expired cookie, page",
            live,
            req("/orders?page=2&q=caf%C3%A9", f"__session={expired}; __client_uat={uat}"),
        ),
        (
            "prod: expired cookie, suffixed",
            live,
            req("/orders", f"__session_{suffix_live}={expired}; __client_uat_{suffix_live}={uat}"),
        ),
        ("prod: expired cookie, HEAD", live, req("/orders", f"__session={expired}; __client_uat={uat}", method="HEAD")),
        (
            "prod: redirect counter garbage",
            live,
            req("/orders", f"__session={expired}; __client_uat={uat}; __clerk_redirect_count=abc"),
        ),
        ("prod: uat only, JWKS keys", live, req("/", f"__client_uat={uat}")),
        ("prod: valid cookie from the JWKS", live, req("/", f"__session={fresh}; __client_uat={uat}")),
        ("dev: nonce in query", dev, req("/orders?x=1&__clerk_handshake_nonce=nonce_dev&__clerk_db_jwt=dvb_q", db)),
        ("dev: nonce unknown", dev, req("/orders?__clerk_handshake_nonce=nonce_unknown", db)),
        ("dev: nonce with __clerk_help", dev, req("/orders?__clerk_help=1&__clerk_handshake_nonce=nonce_dev", db)),
        (
            "dev: nonce gives a token from a drifting clock",
            dev,
            req("/orders?__clerk_handshake_nonce=nonce_drifted", db),
        ),
        ("dev: handshake token in query", dev, req(f"/orders?__clerk_handshake={handshake_token}", db)),
        ("dev: handshake token by another key", dev, req(f"/orders?__clerk_handshake={forged_handshake}", db)),
        ("dev: valid cookie and dev browser", dev, req("/orders", f"{db}; __session={fresh}; __client_uat={uat}")),
        ("dev: no dev browser, page", dev, req("/orders", f"__session={fresh}; __client_uat={uat}")),
        ("dev: no dev browser, valid cookie (api)", dev, req("/api/me", f"__session={fresh}; __client_uat={uat}", API)),
        (
            "dev: dev browser in query",
            dev,
            req("/orders?__clerk_db_jwt=dvb_q&__dev_session=old", f"__session={fresh}; __client_uat={uat}"),
        ),
        ("dev: expired cookie", dev, req("/orders", f"{db}; __session={expired}; __client_uat={uat}")),
        (
            "dev: suffixed cookies and dev browser",
            dev,
            req(
                "/orders",
                f"__clerk_db_jwt_{suffix_test}=dvb_s; __session_{suffix_test}={expired}; "
                f"__client_uat_{suffix_test}={uat}",
            ),
        ),
        ("dev: expired Bearer on a page", dev, req("/orders", db, {**PAGE, "Authorization": f"Bearer {expired}"})),
    ]


def ours(backend: BackendAPI, publishable_key: str, shape: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(shape["url"])
    headers = shape["headers"]
    incoming = handshake.Incoming(
        method=shape["method"],
        base_url=f"{url.scheme}://{url.netloc}{url.path}",
        query=tuple(parse_qsl(url.query, keep_blank_values=True)),
        headers=headers,
        cookies=parse_cookie(headers.get("Cookie", "")),
    )
    instance = request_auth.Instance(
        TEST_FRONTEND_API, keys.cookie_suffix(publishable_key), keys.is_live(publishable_key)
    )
    api = ClerkAPI(f"{backend.url}/v1", SECRETS[publishable_key], retries=0)
    route = handshake.Handshake(f"https://{TEST_FRONTEND_API}", api.handshake_payload)
    decision = handshake.authenticate(incoming, VERIFIERS[publishable_key], instance, route)
    return {
        "status": decision.status,
        "userId": decision.session.user_id if decision.session else None,
        "location": decision.location,
        "setCookies": list(decision.set_cookies),
    }


VERIFIERS: dict[str, tokens.SessionVerifier] = {}


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    location = result.get("location")
    target = urlsplit(location) if location else None
    return {
        "status": result.get("status"),
        "userId": result.get("userId"),
        "location": (target.scheme, target.netloc, target.path, parse_qsl(target.query)) if target else None,
        "setCookies": result.get("setCookies"),
    }


def test_handshakes_are_decided_as_clerks_authenticate_request_decides_them(backend):
    cases = shapes(backend)
    assert len(cases) >= 30
    for key in (LIVE_KEY, TEST_PUBLISHABLE_KEY):  # prod in JWKS mode, dev networkless with the PEM
        headers = {"Authorization": f"Bearer {SECRETS[key]}"}
        VERIFIERS[key] = (
            tokens.SessionVerifier(jwks_url=f"{backend.url}/v1/jwks", jwks_headers=headers, issuer=TEST_ISSUER)
            if key == LIVE_KEY
            else tokens.SessionVerifier(pem_key=TOKENS.public_pem, issuer=TEST_ISSUER)
        )
    differences = {}
    for key in (LIVE_KEY, TEST_PUBLISHABLE_KEY):
        batch = [(name, shape) for name, pk, shape in cases if pk == key]
        client = {"publishableKey": key, "secretKey": SECRETS[key], "apiUrl": backend.url, "issuer": TEST_ISSUER}
        if key == TEST_PUBLISHABLE_KEY:
            client["jwtKey"] = TOKENS.public_pem
        theirs = run_oracle({"mode": "authenticate", "client": client, "options": {}, "items": [s for _, s in batch]})
        for (name, shape), clerk in zip(batch, theirs, strict=True):
            mine = ours(backend, key, shape)
            if comparable(mine) != comparable(clerk):
                differences[name] = {
                    "ours": comparable(mine),
                    "clerk": {**comparable(clerk), "reason": clerk.get("reason")},
                }
    assert set(differences) == set(DOCUMENTED), json.dumps(differences, indent=1, default=str)
