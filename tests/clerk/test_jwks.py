"""Keys from a JWKS served by a real HTTP server on 127.0.0.1: cached, rotated, not hammered by forgeries,
fetched before the first shopper, and retried within seconds while a worker holds none."""

import json
import logging
import socket
import threading
import time
import uuid

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from shop.clerk import keys, tokens
from tests.support import TEST_ISSUER, TokenMinter, wait_for

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


# --- Clerk's JWKS in an outage: with keys held, one fetch per cooldown whatever happens, and cached keys ----
# --- keep working; with no key at all, retries 1 s, 2 s, 4 s … apart, up to the cooldown -------------------


class FlakyJWKS:
    """A JWKS endpoint that serves keys, then fails with 500 or hangs until released; counts calls."""

    def __init__(self, server: HTTPServer, minter: TokenMinter):
        self.minter = minter
        self.mode = "ok"
        self.calls = 0
        self.arrivals: list[float] = []  # time.monotonic() of each call
        self.release = threading.Event()
        self.hanging = threading.Event()  # set while a request is held
        server.expect_request("/v1/jwks").respond_with_handler(self.handle)
        self.url = server.url_for("/v1/jwks")

    def handle(self, request):
        self.calls += 1
        self.arrivals.append(time.monotonic())
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
    """Once a worker holds keys: the no-key back-off below never applies to it."""
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


def test_a_cold_start_against_a_failing_jwks_fetches_once_per_retry(httpserver):
    """No key yet: a burst of tokens right after a failed fetch makes no second call (the next
    retry is a second away), however long the cooldown."""
    endpoint = FlakyJWKS(httpserver, TokenMinter())
    endpoint.mode = "fail"
    verifier = tokens.SessionVerifier(jwks_url=endpoint.url, issuer=TEST_ISSUER, jwks_cooldown=3600)
    started = time.monotonic()
    for _ in range(50):
        with pytest.raises(tokens.InvalidToken):
            verifier.verify(endpoint.minter.mint())
    assert time.monotonic() - started < 1.0, "the burst outlasted the first retry's pause: nothing was measured"
    assert endpoint.calls == 1


def refused_or_session(verifier: tokens.SessionVerifier, token: str) -> tokens.Session | None:
    try:
        return verifier.verify(token)
    except tokens.InvalidToken:
        return None


def test_a_worker_with_no_key_signs_shoppers_in_within_seconds_of_the_jwks_recovering(httpserver):
    minter = TokenMinter(kid="ins_cold")
    endpoint = FlakyJWKS(httpserver, minter)
    endpoint.mode = "fail"
    verifier = tokens.SessionVerifier(jwks_url=endpoint.url, issuer=TEST_ISSUER, jwks_cooldown=30)
    token = minter.mint("user_cold")
    assert refused_or_session(verifier, token) is None  # started during the outage: the fetch failed
    assert endpoint.calls == 1
    endpoint.mode = "ok"
    recovered = time.monotonic()
    session = wait_for(lambda: refused_or_session(verifier, token), timeout=5, what="the token to be accepted")
    assert session.user_id == "user_cold"
    assert time.monotonic() - recovered < 2.0  # not the 30-second cooldown
    assert endpoint.calls == 2  # and the shoppers in between did not each cause a call


def test_with_no_key_the_retries_back_off_up_to_the_cooldown(httpserver):
    """Each pause is measured between clock readings that a slow scheduler can only move apart, never
    across the pause: it starts after its failed call reached the server and before `get()` returned,
    and ends after the last refused `get()` began and before the next call reached the server."""
    endpoint = FlakyJWKS(httpserver, TokenMinter(kid="ins_down"))
    endpoint.mode = "fail"
    remote = keys.RemoteKeys(endpoint.url, {}, cooldown=2.0, cold_retry=0.25)
    pace, rounding = threading.Event(), 1e-6
    assert remote.get("ins_down") is None
    failed_by = time.monotonic()
    assert endpoint.calls == 1
    # 0.25 s, 0.5 s, 1 s, then the 2 s cooldown caps the doubling (without the cap, the last would be 4 s).
    for pause in [0.25, 0.5, 1.0, 2.0, 2.0]:
        calls = endpoint.calls
        while endpoint.calls == calls:  # a shopper (or a forger) every 5 ms
            asked_at = time.monotonic()
            assert remote.get("ins_down") is None
            if endpoint.calls == calls:  # refused: the pause, begun before failed_by, was not over at asked_at
                waited = asked_at - failed_by
                assert waited < pause + rounding, f"no retry {waited:.3f} s after a failure; pause {pause} s"
                pace.wait(0.005)
        failed_by = time.monotonic()
        gaps = [later - earlier for earlier, later in zip(endpoint.arrivals, endpoint.arrivals[1:], strict=False)]
        assert endpoint.calls == calls + 1, gaps
        assert gaps[-1] > pause - rounding, (pause, gaps)  # the retry came no sooner than the pause


def test_a_success_ends_the_back_off_and_the_cooldown_rules_again(httpserver):
    minter = TokenMinter(kid="ins_back")
    endpoint = FlakyJWKS(httpserver, minter)
    endpoint.mode = "fail"
    verifier = tokens.SessionVerifier(jwks_url=endpoint.url, issuer=TEST_ISSUER, jwks_cooldown=30)
    assert refused_or_session(verifier, minter.mint()) is None
    endpoint.mode = "ok"
    assert wait_for(lambda: refused_or_session(verifier, minter.mint("user_back")), timeout=5)
    calls = endpoint.calls
    for _ in range(100):  # unknown kids now wait for the cooldown: keys are held
        with pytest.raises(tokens.InvalidToken):
            verifier.verify(forged(minter))
    assert endpoint.calls == calls


def test_prefetch_loads_the_keys_before_the_first_shopper(httpserver):
    minter = TokenMinter(kid="ins_pre")
    endpoint = FlakyJWKS(httpserver, minter)
    verifier = tokens.SessionVerifier(jwks_url=endpoint.url, issuer=TEST_ISSUER)
    assert verifier.remote_keys is not None
    assert verifier.remote_keys.prefetch() is True
    assert endpoint.calls == 1
    endpoint.mode = "fail"  # the keys are already here: the shopper needs no call
    assert verifier.verify(minter.mint("user_first")).user_id == "user_first"
    assert endpoint.calls == 1


@pytest.mark.parametrize("answer", ["status 500", "no server", "keys not a list", "not JSON"])
def test_prefetch_during_an_outage_logs_one_line_and_never_raises(httpserver, caplog, answer):
    minter = TokenMinter(kid="ins_out")
    endpoint = FlakyJWKS(httpserver, minter)
    url = endpoint.url
    if answer == "status 500":
        endpoint.mode = "fail"
    elif answer == "no server":
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1/jwks"  # nothing listens there once closed
    else:
        httpserver.clear()
        body = '{"keys": 5}' if answer == "keys not a list" else "<html>down</html>"
        httpserver.expect_request("/v1/jwks").respond_with_data(body, content_type="application/json")
    remote = keys.RemoteKeys(url, {"Authorization": f"Bearer {SECRET}"}, cooldown=30)
    with caplog.at_level(logging.WARNING, logger="shop.clerk.keys"):
        assert remote.prefetch() is False
    lines = [record.getMessage() for record in caplog.records if record.name == "shop.clerk.keys"]
    assert len(lines) == 1 and "next try in 1s" in lines[0] and SECRET not in lines[0], lines
    if answer == "status 500":  # and the lazy path retries within a second or two of recovery
        endpoint.mode = "ok"
        assert wait_for(lambda: remote.get("ins_out"), timeout=3) is not None


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
