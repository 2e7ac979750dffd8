"""Every decision of shop.clerk.handshake: eligibility, reasons, loop counter, nonce and token formats, dev vs prod."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shop.clerk import handshake, request_auth, tokens
from shop.clerk.api import ClerkAPIError
from tests.clerk.clerk_sdk import sign
from tests.conftest import TOKENS
from tests.support import TEST_FRONTEND_API, TEST_ISSUER

VERIFIER = tokens.SessionVerifier(pem_key=TOKENS.public_pem, issuer=TEST_ISSUER)
PROD = request_auth.Instance(TEST_FRONTEND_API, "suffix01", production=True)
DEV = request_auth.Instance(TEST_FRONTEND_API, "suffix01", production=False)
PAGE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document"}
NOW = int(time.time())
UAT = str(NOW - 300)


class Payloads:
    """The Backend API's handshake_payload, as a function: directives by nonce, or Clerk's 404."""

    def __init__(self, **directives: list[str]):
        self.directives = directives
        self.asked: list[str] = []

    def __call__(self, nonce: str) -> list[str]:
        self.asked.append(nonce)
        if nonce not in self.directives:
            raise ClerkAPIError("Clerk refused the handshake nonce (resource_not_found).", status=404)
        return self.directives[nonce]


def decide(url="/orders", cookies=None, headers=None, method="GET", instance=PROD, payloads=None, route=True):
    path, _, query = url.partition("?")
    from urllib.parse import parse_qsl

    incoming = handshake.Incoming(
        method,
        f"https://shop.test{path}",
        tuple(parse_qsl(query)),
        headers if headers is not None else PAGE,
        cookies or {},
    )
    hs = handshake.Handshake(f"https://{TEST_FRONTEND_API}", payloads or Payloads()) if route else None
    return handshake.authenticate(incoming, VERIFIER, instance, hs)


def expired() -> str:
    return TOKENS.mint("user_a", exp=NOW - 60, iat=NOW - 120)


# --- when: only probable document navigations ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "eligible"),
    [
        ("GET", {"Sec-Fetch-Dest": "document"}, True),
        ("GET", {"Sec-Fetch-Dest": "iframe"}, True),
        ("GET", {"Accept": "text/html,*/*"}, True),
        ("GET", {"Accept": "application/json, text/html"}, False),  # Clerk: Accept must start with text/html
        ("GET", {"Sec-Fetch-Dest": "empty", "Accept": "text/html"}, False),  # fetch()
        ("GET", {"Sec-Fetch-Dest": "image"}, False),
        ("GET", {}, False),
        ("POST", {"Sec-Fetch-Dest": "document"}, False),  # a form post: the handshake only answers GET
        ("HEAD", {"Sec-Fetch-Dest": "document"}, False),
    ],
)
def test_only_probable_document_navigations_are_redirected(method, headers, eligible):
    assert handshake.is_document_request(method, headers) is eligible
    decision = decide(cookies={"__session": expired(), "__client_uat": UAT}, headers=headers, method=method)
    assert decision.status == (handshake.HANDSHAKE_STATUS if eligible else handshake.SIGNED_OUT)


# --- each reason --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cookies", "reason"),
    [
        ({"__session": "EXPIRED", "__client_uat": UAT}, "session-token-expired-refresh-non-eligible-no-refresh-cookie"),
        ({"__client_uat": UAT}, "client-uat-but-no-session-token"),
        ({"__session": "OLD", "__client_uat": str(NOW)}, "session-token-iat-before-client-uat"),
        ({"__session": "FRESH", "__client_uat": "0"}, "session-token-but-no-client-uat"),
        ({"__session": "NBF", "__client_uat": UAT}, "session-token-nbf"),
        ({"__session": "IAT", "__client_uat": UAT}, "session-token-iat-in-the-future"),
    ],
)
def test_each_hand_off_reason(cookies, reason):
    now = int(time.time())  # not the module's NOW: the suite may reach this test a minute later
    made = {
        "EXPIRED": expired(),
        "OLD": TOKENS.mint("user_a", iat=NOW - 30),
        "FRESH": TOKENS.mint("user_a"),
        "NBF": TOKENS.mint("user_a", nbf=now + 60),
        "IAT": TOKENS.mint("user_a", iat=now + 60, nbf=None),
    }
    decision = decide(cookies={name: made.get(value, value) for name, value in cookies.items()})
    assert (decision.status, decision.reason) == (handshake.HANDSHAKE_STATUS, reason)
    query = parse_qs(urlsplit(decision.location).query)
    assert query["__clerk_hs_reason"] == [reason]


def test_the_redirect_out_carries_what_clerk_needs():
    token = expired()
    decision = decide("/orders?page=2&__clerk_db_jwt=x", {"__session": token, "__client_uat": UAT})
    target = urlsplit(decision.location)
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"https://{TEST_FRONTEND_API}/v1/client/handshake"
    assert parse_qs(target.query) == {
        "redirect_url": ["https://shop.test/orders?page=2"],  # dev-browser parameters removed
        "__clerk_api_version": [handshake.API_VERSION],
        "suffixed_cookies": ["false"],
        "__clerk_hs_reason": ["session-token-expired-refresh-non-eligible-no-refresh-cookie"],
        "format": ["nonce"],
        "__session": [token],
    }
    assert decision.set_cookies == ("__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2",)


def test_signed_in_and_signed_out_need_no_redirect():
    assert decide(cookies={"__session": TOKENS.mint("user_a"), "__client_uat": UAT}).session.user_id == "user_a"
    signed_out = decide(cookies={})
    assert (signed_out.status, signed_out.location) == (handshake.SIGNED_OUT, None)
    forged = decide(cookies={"__session": TOKENS.mint("user_a", iss="https://evil.test"), "__client_uat": UAT})
    assert (forged.status, forged.location) == (handshake.SIGNED_OUT, None)  # a bad token is not refreshable


# --- the loop counter ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "next_count"), [("", 1), ("1", 2), ("2", 3), ("junk", 1)])
def test_each_redirect_is_counted(count, next_count):
    cookies = {"__session": expired(), "__client_uat": UAT, "__clerk_redirect_count": count}
    decision = decide(cookies=cookies)
    assert decision.set_cookies[0].startswith(f"__clerk_redirect_count={next_count};")


def test_three_redirects_in_a_row_stop_with_the_page_signed_out(caplog):
    decision = decide(cookies={"__session": expired(), "__client_uat": UAT, "__clerk_redirect_count": "3"})
    assert (decision.status, decision.location, decision.set_cookies) == (handshake.SIGNED_OUT, None, ())
    assert "stopped after 3 redirects" in caplog.text


# --- back: nonce and token formats --------------------------------------------------------------------


def directives(token: str) -> list[str]:
    return [f"__session={token}; Path=/; SameSite=Lax", f"__client_uat={NOW}; Path=/; SameSite=Lax"]


@pytest.mark.parametrize("where", ["query", "cookie"])
def test_a_nonce_is_resolved_through_the_backend_api(where):
    payloads = Payloads(n1=directives(TOKENS.mint("user_back")))
    url, cookies = (
        ("/orders?__clerk_handshake_nonce=n1", {})
        if where == "query"
        else ("/orders", {"__clerk_handshake_nonce": "n1"})
    )
    decision = decide(url, cookies, payloads=payloads)
    assert decision.session.user_id == "user_back"
    assert decision.set_cookies == tuple(payloads.directives["n1"]) and decision.location is None
    assert payloads.asked == ["n1"]


def test_a_nonce_that_brings_back_a_pending_session_says_so_without_another_handshake():
    """The page goes on to /sign-in (shop.auth.session) rather than round the handshake again."""
    payloads = Payloads(n1=directives(TOKENS.mint("user_task", sts="pending")))
    decision = decide("/orders", {"__clerk_handshake_nonce": "n1"}, payloads=payloads)
    assert (decision.status, decision.reason, decision.session) == (handshake.SIGNED_OUT, tokens.PENDING, None)
    assert decision.set_cookies == tuple(payloads.directives["n1"])  # the browser keeps Clerk's fresh cookies


def test_an_unknown_nonce_is_signed_out_with_a_log_line(caplog):
    decision = decide("/orders", {"__clerk_handshake_nonce": "stale"}, payloads=Payloads())
    assert (decision.status, decision.reason, decision.location) == (
        handshake.SIGNED_OUT,
        "session-token-missing",
        None,
    )
    assert "nonce could not be resolved" in caplog.text


def test_in_development_the_browser_is_sent_once_more_to_the_clean_url():
    payloads = Payloads(n1=directives(TOKENS.mint("user_back")))
    url = "/orders?page=2&__clerk_handshake_nonce=n1&__clerk_db_jwt=d&__clerk_help=1"
    decision = decide(url, {"__clerk_db_jwt": "d"}, instance=DEV, payloads=payloads)
    assert decision.session.user_id == "user_back"
    assert decision.location == "https://shop.test/orders?page=2"


def handshake_token(key=None, **header) -> str:
    claims = {"handshake": directives(TOKENS.mint("user_token"))}
    return sign(key or TOKENS.private_key, {"alg": "RS256", "kid": TOKENS.kid, "typ": "JWT", **header}, claims)


def test_the_older_handshake_token_is_verified_and_read():
    decision = decide("/orders", {"__clerk_handshake": handshake_token()})
    assert decision.session.user_id == "user_token" and len(decision.set_cookies) == 2


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(
            lambda: handshake_token(rsa.generate_private_key(public_exponent=65537, key_size=2048)), id="other-key"
        ),
        pytest.param(lambda: handshake_token(typ="at+jwt"), id="typ"),
        pytest.param(lambda: handshake_token(cat="cl_B7d4PD222AAA"), id="jwt-template"),
        pytest.param(lambda: handshake_token(alg="HS256"), id="alg"),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
    ],
)
@pytest.mark.parametrize("instance", [PROD, DEV], ids=["prod", "dev"])
def test_an_invalid_handshake_token_never_signs_in_and_never_loops(token, instance):
    cookies = {"__clerk_handshake": token(), "__clerk_db_jwt": "d"}
    decision = decide("/orders", cookies, instance=instance)
    assert decision.session is None and decision.set_cookies == ()
    assert decision.status == handshake.SIGNED_OUT


def test_a_handshake_session_token_from_a_drifting_clock_is_accepted_in_development_only():
    drifted = TOKENS.mint("user_drift", iat=NOW - 4000, nbf=NOW - 4000, exp=NOW - 3600)
    payloads = Payloads(n1=directives(drifted))
    dev = decide("/orders?__clerk_handshake_nonce=n1", {"__clerk_db_jwt": "d"}, instance=DEV, payloads=payloads)
    assert dev.session.user_id == "user_drift"
    prod = decide("/orders", {"__clerk_handshake_nonce": "n1"}, payloads=payloads)
    assert prod.session is None


# --- dev vs prod: the dev-browser token ---------------------------------------------------------------


def test_development_pages_without_a_dev_browser_go_through_the_handshake():
    decision = decide(cookies={"__session": TOKENS.mint("user_a"), "__client_uat": UAT}, instance=DEV)
    assert (decision.status, decision.reason) == (handshake.HANDSHAKE_STATUS, "dev-browser-missing")


def test_a_dev_browser_in_the_query_is_synced_and_passed_on():
    decision = decide(
        "/orders?__clerk_db_jwt=dvb_q", {"__session": TOKENS.mint("user_a"), "__client_uat": UAT}, instance=DEV
    )
    assert decision.reason == "dev-browser-sync"
    query = parse_qs(urlsplit(decision.location).query)
    assert query["__clerk_db_jwt"] == ["dvb_q"] and query["redirect_url"] == ["https://shop.test/orders"]


def test_production_needs_no_dev_browser():
    assert decide(cookies={"__session": TOKENS.mint("user_a"), "__client_uat": UAT}).session is not None


# --- without a secret key: no handshake, the interstitial instead --------------------------------------


def test_without_a_route_nothing_is_redirected_or_resolved():
    payloads = Payloads(n1=directives(TOKENS.mint("user_back")))
    decision = decide("/orders?__clerk_handshake_nonce=n1", {"__session": expired(), "__client_uat": UAT}, route=False)
    assert (decision.status, decision.location, decision.needs_refresh) == (handshake.SIGNED_OUT, None, True)
    assert payloads.asked == []
    signed_out_elsewhere = decide(cookies={"__session": TOKENS.mint("user_a"), "__client_uat": "0"}, route=False)
    assert signed_out_elsewhere.needs_refresh is False  # a refresh cannot help a signed-out browser
