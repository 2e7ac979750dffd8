"""Keys from a JWKS served by a real HTTP server on 127.0.0.1: cached, rotated, not hammered by forgeries."""

import json
import uuid

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from shop.clerk import tokens
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
