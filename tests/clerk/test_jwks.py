"""Keys from a JWKS served by a real HTTP server on 127.0.0.1: cached, rotated, not hammered by forgeries."""

import json
import threading
import time
import uuid

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from shop.clerk import keys, tokens
from tests.support import TEST_ISSUER, TokenMinter

SECRET = "sk_test_jwks"


class JWKSEndpoint:
    """Clerk's `GET /v1/jwks`: Bearer secret key required; counts fetches; keys can be rotated."""

    def __init__(self, server: HTTPServer, *minters: TokenMinter):
        self.minters = list(minters)
        self.fetches = 0
        server.expect_request("/v1/jwks").respond_with_handler(self.handle)
        self.url = server.url_for("/v1/jwks")

    def handle(self, request):
        if request.headers.get("Authorization") != f"Bearer {SECRET}":
            return Response(json.dumps({"errors": [{"code": "clerk_key_invalid"}]}), status=401)
        self.fetches += 1
        return Response(json.dumps({"keys": [m.jwk() for m in self.minters]}), content_type="application/json")


def verifier_for(endpoint: JWKSEndpoint, cooldown: float = 30) -> tokens.SessionVerifier:
    return tokens.SessionVerifier(
        jwks_url=endpoint.url,
        jwks_headers={"Authorization": f"Bearer {SECRET}"},
        issuer=TEST_ISSUER,
        jwks_cooldown=cooldown,
    )


def test_fetched_once_across_many_requests(httpserver):
    minter = TokenMinter(kid="ins_one")
    endpoint = JWKSEndpoint(httpserver, minter)
    verifier = verifier_for(endpoint)
    for index in range(50):
        assert verifier.verify(minter.mint(f"user_{index}")).user_id == f"user_{index}"
    assert endpoint.fetches == 1


def test_key_rotation_is_picked_up(httpserver):
    old, new = TokenMinter(kid="ins_old"), TokenMinter(kid="ins_new")
    endpoint = JWKSEndpoint(httpserver, old)
    verifier = verifier_for(endpoint, cooldown=0)
    assert verifier.verify(old.mint())
    endpoint.minters = [new]  # Clerk rotated its key
    assert verifier.verify(new.mint("user_after_rotation")).user_id == "user_after_rotation"
    assert endpoint.fetches == 2


def test_forged_tokens_with_random_kids_cause_a_bounded_number_of_fetches(httpserver):
    minter = TokenMinter(kid="ins_real")
    endpoint = JWKSEndpoint(httpserver, minter)
    verifier = verifier_for(endpoint)
    assert verifier.verify(minter.mint())
    for _ in range(100):
        forger = TokenMinter.__new__(TokenMinter)
        forger.__dict__.update(minter.__dict__, kid=f"ins_{uuid.uuid4().hex}")
        with pytest.raises(tokens.InvalidToken):
            verifier.verify(forger.mint())
    assert endpoint.fetches <= 2
    assert verifier.verify(minter.mint("user_still_fine"))


def test_jwks_down_means_signed_out_not_an_error(httpserver):
    httpserver.expect_request("/v1/jwks").respond_with_data("oops", status=500)
    verifier = tokens.SessionVerifier(jwks_url=httpserver.url_for("/v1/jwks"), issuer=TEST_ISSUER)
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(TokenMinter().mint())


def test_wrong_secret_key_cannot_fetch_keys(httpserver):
    minter = TokenMinter()
    endpoint = JWKSEndpoint(httpserver, minter)
    verifier = tokens.SessionVerifier(
        jwks_url=endpoint.url, jwks_headers={"Authorization": "Bearer sk_test_wrong"}, issuer=TEST_ISSUER
    )
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(minter.mint())


# --- Clerk's JWKS in an outage: one fetch per cooldown, whatever happens; cached keys keep working ---------


class FlakyJWKS:
    """A JWKS endpoint that serves keys, then fails with 500 or hangs until released; counts calls."""

    def __init__(self, server: HTTPServer, minter: TokenMinter):
        self.minter = minter
        self.mode = "ok"
        self.calls = 0
        self.release = threading.Event()
        self.hanging = threading.Event()  # set while a request is held
        server.expect_request("/v1/jwks").respond_with_handler(self.handle)
        self.url = server.url_for("/v1/jwks")

    def handle(self, request):
        self.calls += 1
        if self.mode == "fail":
            return Response("upstream down", status=500)
        if self.mode == "hang":
            self.hanging.set()
            self.release.wait(30)
        return Response(json.dumps({"keys": [self.minter.jwk()]}), content_type="application/json")


def forged(minter: TokenMinter) -> str:
    forger = TokenMinter.__new__(TokenMinter)
    forger.__dict__.update(minter.__dict__, kid=f"ins_{uuid.uuid4().hex}")
    return forger.mint()


def fetch_forged_until(verifier: tokens.SessionVerifier, endpoint: FlakyJWKS, calls: int) -> None:
    """Present forged kids until the JWKS endpoint has been called `calls` times (the cooldown is over)."""
    token, deadline = forged(endpoint.minter), time.monotonic() + 10
    while endpoint.calls < calls and time.monotonic() < deadline:
        with pytest.raises(tokens.InvalidToken):
            verifier.verify(token)
    assert endpoint.calls == calls


def test_a_failing_jwks_is_called_at_most_once_per_cooldown(httpserver):
    minter = TokenMinter(kid="ins_cached")
    endpoint = FlakyJWKS(httpserver, minter)
    verifier = tokens.SessionVerifier(jwks_url=endpoint.url, issuer=TEST_ISSUER, jwks_cooldown=2)
    assert verifier.verify(minter.mint("user_before"))
    forgeries = [forged(minter) for _ in range(300)]
    endpoint.mode = "fail"
    fetch_forged_until(verifier, endpoint, calls=2)  # the cooldown passed: one refetch, which fails
    for token in forgeries:
        with pytest.raises(tokens.InvalidToken):
            verifier.verify(token)
    assert endpoint.calls == 2  # a failure starts the cooldown too: 300 forgeries, no more calls
    assert verifier.verify(minter.mint("user_during_outage")).user_id == "user_during_outage"


def test_a_cold_start_against_a_failing_jwks_fetches_once(httpserver):
    endpoint = FlakyJWKS(httpserver, TokenMinter())
    endpoint.mode = "fail"
    verifier = tokens.SessionVerifier(jwks_url=endpoint.url, issuer=TEST_ISSUER, jwks_cooldown=3600)
    for _ in range(50):
        with pytest.raises(tokens.InvalidToken):
            verifier.verify(endpoint.minter.mint())
    assert endpoint.calls == 1


def test_a_hanging_jwks_does_not_delay_sign_ins_with_a_cached_key(httpserver):
    minter = TokenMinter(kid="ins_cached")
    endpoint = FlakyJWKS(httpserver, minter)
    verifier = tokens.SessionVerifier(jwks_url=endpoint.url, issuer=TEST_ISSUER, jwks_cooldown=0.5)
    assert verifier.verify(minter.mint())
    sign_ins = [minter.mint(f"user_{index}") for index in range(200)]
    forgeries = [forged(minter) for _ in range(50)]
    endpoint.mode = "hang"

    def forge_until_the_fetch_hangs() -> None:
        token = forged(minter)
        while not endpoint.hanging.is_set():
            with pytest.raises(tokens.InvalidToken):
                verifier.verify(token)  # the last call is the one stuck in the hanging fetch

    stuck = threading.Thread(target=forge_until_the_fetch_hangs)
    stuck.start()
    try:
        assert endpoint.hanging.wait(10), "the forged kid never reached the JWKS endpoint"
        started = time.monotonic()
        for index, token in enumerate(sign_ins):  # real sign-ins while the fetch hangs
            assert verifier.verify(token).user_id == f"user_{index}"
        for token in forgeries:  # more forgeries are refused at once: no waiting, no second call
            with pytest.raises(tokens.InvalidToken):
                verifier.verify(token)
        assert time.monotonic() - started < 2.0  # RSA verifications only, never an HTTP timeout
        assert endpoint.calls == 2
    finally:
        endpoint.release.set()
        stuck.join()


def test_keys_older_than_their_lifespan_are_refreshed_in_the_background(httpserver):
    minter = TokenMinter(kid="ins_cached")
    endpoint = FlakyJWKS(httpserver, minter)
    remote = keys.RemoteKeys(endpoint.url, {}, cooldown=0, lifespan=0)
    assert remote.get("ins_cached") is not None
    endpoint.mode = "hang"
    started = time.monotonic()
    assert remote.get("ins_cached") is not None  # stale, so a refresh starts, but the answer does not wait
    assert time.monotonic() - started < 1.0
    assert endpoint.hanging.wait(10)
    endpoint.release.set()
