"""Session-token verification: Clerk's own vectors, and every way a token can be wrong."""

import base64
import json
import time

import jwt
import pytest

from shop.clerk import keys, tokens
from tests.support import TEST_ISSUER, TokenMinter, vector

CLERK = vector("clerk-javascript_session_jwt_vectors.json")
ORIGIN = "http://localhost"


@pytest.fixture(scope="module")
def minter() -> TokenMinter:
    return TokenMinter()


@pytest.fixture
def verifier(minter):
    return tokens.SessionVerifier(pem_key=minter.public_pem, issuer=TEST_ISSUER, authorized_parties=[ORIGIN])


# --- Clerk's published token ---------------------------------------------------------------------------


def clerk_verifier(pem: str) -> tokens.SessionVerifier:
    """Expiry effectively off: the vector expired in 2022. Every other check stays on."""
    return tokens.SessionVerifier(pem_key=pem, issuer=keys.frontend_api_url(CLERK["pkTest"]), clock_skew=10**10)


def test_clerks_token_verifies_with_its_pem_when_expiry_is_off():
    session = clerk_verifier(CLERK["pemEncodedPublicKey"]).verify(CLERK["mockJwt"])
    assert session.user_id == CLERK["mockJwtPayload"]["sub"]
    assert session.session_id == CLERK["mockJwtPayload"]["sid"]


def test_clerks_token_is_expired_with_the_normal_skew():
    verifier = tokens.SessionVerifier(pem_key=CLERK["pemEncodedPublicKey"])
    with pytest.raises(tokens.ExpiredToken):
        verifier.verify(CLERK["mockJwt"])


def test_clerks_tampered_twin_does_not_verify():
    with pytest.raises(tokens.InvalidToken) as refused:
        clerk_verifier(CLERK["pemEncodedPublicKey"]).verify(CLERK["mockInvalidSignatureJwt"])
    assert not isinstance(refused.value, tokens.ExpiredToken)


def test_clerks_malformed_token_does_not_verify():
    with pytest.raises(tokens.InvalidToken):
        clerk_verifier(CLERK["pemEncodedPublicKey"]).verify(CLERK["mockMalformedJwt"])


def test_clerks_token_does_not_verify_with_another_key():
    with pytest.raises(tokens.InvalidToken):
        clerk_verifier(CLERK["someOtherPublicKey_for_negative_tests"]).verify(CLERK["mockJwt"])


# --- tokens minted by the test ---------------------------------------------------------------------------


def test_valid_token(verifier, minter):
    session = verifier.verify(minter.mint("user_a", sid="sess_a"))
    assert (session.user_id, session.session_id) == ("user_a", "sess_a")


def test_expired(verifier, minter):
    with pytest.raises(tokens.ExpiredToken):
        verifier.verify(minter.mint(exp=int(time.time()) - 30, iat=int(time.time()) - 90))


def test_expired_within_the_skew_is_accepted(verifier, minter):
    assert verifier.verify(minter.mint(exp=int(time.time()) - 2))


def test_not_before_beyond_the_skew(verifier, minter):
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(minter.mint(nbf=int(time.time()) + 30))


def test_not_before_within_the_skew(verifier, minter):
    assert verifier.verify(minter.mint(nbf=int(time.time()) + 3))


def test_issued_in_the_future(verifier, minter):
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(minter.mint(iat=int(time.time()) + 120, nbf=None))


def test_wrong_issuer(verifier, minter):
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(minter.mint(iss="https://evil.clerk.accounts.dev"))


def test_azp_absent_is_accepted(verifier, minter):
    assert verifier.verify(minter.mint(azp=None))


def test_azp_allowed(verifier, minter):
    assert verifier.verify(minter.mint(azp=ORIGIN + "/"))


def test_azp_not_allowed(verifier, minter):
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(minter.mint(azp="https://evil.example.com"))


def test_azp_not_checked_without_a_list(minter):
    verifier = tokens.SessionVerifier(pem_key=minter.public_pem, issuer=TEST_ISSUER)
    assert verifier.verify(minter.mint(azp="https://anything.example.com"))


def test_pending_session_is_signed_out(verifier, minter):
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(minter.mint(sts="pending"))
    assert verifier.verify(minter.mint(sts="active"))


@pytest.mark.parametrize("claim", ["sub", "sid", "exp", "iat"])
def test_missing_required_claim(verifier, minter, claim):
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(minter.mint(**{claim: None}))


@pytest.mark.parametrize("bad", ["", 42, "x" * 100])
def test_malformed_sub(verifier, minter, bad):
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(minter.mint(sub=bad))


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none(verifier, minter):
    token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': minter.kid})}.{_b64(minter.claims())}."
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(token)


def test_hs256_signed_with_the_public_key_as_secret(verifier, minter):
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': minter.kid})}.{_b64(minter.claims())}"
    signature = hmac.new(minter.public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(token)


def test_signed_by_another_key(verifier):
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(TokenMinter().mint())


@pytest.mark.parametrize(
    "garbage", ["garbage", "a.b.c", "...", "eyJ.eyJ.sig", "Bearer x", "x" * 10_000, "\u2603.\u2603.\u2603"]
)
def test_garbage(verifier, garbage):
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(garbage)


def test_a_verified_token_is_cached_until_it_expires(verifier, minter):
    token = minter.mint(exp=int(time.time()) + 60)
    first = verifier.verify(token)
    assert verifier.verify(token) is first


def test_token_from_request_prefers_bearer_then_suffixed_cookie():
    suffix = keys.cookie_suffix("pk_test_x")
    assert tokens.token_from_request({"Authorization": "Bearer abc"}, {"__session": "cookie"}, suffix) == "abc"
    assert tokens.token_from_request({}, {"__session": "plain", f"__session_{suffix}": "mine"}, suffix) == "mine"
    assert tokens.token_from_request({}, {"__session": "plain"}, suffix) == "plain"
    assert tokens.token_from_request({"Authorization": "Basic abc"}, {}, suffix) is None


@pytest.mark.parametrize(
    ("cookie", "expected"), [("1700000000", 1700000000), ("0", 0), ("x", 0), ("", 0), ("9" * 20, 0)]
)
def test_client_uat(cookie, expected):
    assert tokens.client_uat({"__client_uat": cookie}, None) == expected


def test_jwt_and_svix_are_only_imported_in_the_clerk_package():
    import pathlib
    import re

    protocol_import = re.compile(r"^\s*(from|import) (jwt|svix)\b", re.MULTILINE)
    users = {
        path.parts[1] if len(path.parts) > 2 else path.name
        for path in pathlib.Path("shop").rglob("*.py")
        if protocol_import.search(path.read_text())
    }
    assert users == {"clerk"}
    assert jwt  # the tests themselves mint with PyJWT
