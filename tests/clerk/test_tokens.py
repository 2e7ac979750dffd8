"""Session-token verification: Clerk's own vectors, and every way a token can be wrong."""

import base64
import json
import time

import jwt
import pytest

from shop.clerk import keys, request_auth, tokens
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
    assert verifier.verify(minter.mint(azp=ORIGIN))


@pytest.mark.parametrize("azp", [ORIGIN + "/", "", 42, ["http://localhost"], {"o": 1}])
def test_azp_must_be_exactly_an_allowed_origin(verifier, minter, azp):
    """As @clerk/backend: an origin has no trailing slash; a non-string azp is refused, never a crash."""
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(minter.mint(azp=azp))


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


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ("Bearer abc", "abc"),
        ("Bearer abc def", "abc"),
        ("abc", "abc"),  # no scheme: Clerk takes the whole value as the token
        ("Basic dXNlcjpwYXNz", None),
        ("bearer abc", None),  # Clerk matches the scheme case-sensitively
        ("Negotiate x", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_reads_authorization_as_clerk_does(authorization, expected):
    assert request_auth.bearer_token(authorization) == expected


SUFFIX = keys.cookie_suffix("pk_test_Y2xlcmsuc2hvcC50ZXN0JA")
INSTANCE = request_auth.Instance(frontend_api_host="clerk.shop.test", cookie_suffix=SUFFIX)


def test_suffixed_cookies_win_when_clerk_js_wrote_them(minter):
    mine, other = minter.mint("user_mine"), minter.mint("user_other", iat=int(time.time()) - 100)
    cookies = {"__session": other, f"__session_{SUFFIX}": mine, "__client_uat": "1", f"__client_uat_{SUFFIX}": "2"}
    assert request_auth.session_cookie(cookies, INSTANCE) == mine


def test_unsuffixed_cookie_of_another_instance_is_ignored(minter):
    foreign = minter.mint("user_foreign", iss="https://other.clerk.accounts.dev")
    cookies = {"__session": foreign, f"__session_{SUFFIX}": "mine", f"__client_uat_{SUFFIX}": "5"}
    assert request_auth.session_cookie(cookies, INSTANCE) == "mine"


def test_unsuffixed_cookies_when_no_suffixed_ones(minter):
    token = minter.mint()
    assert request_auth.session_cookie({"__session": token}, INSTANCE) == token


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [("1700000000", 1700000000), ("0", 0), ("x", 0), ("", 0), ("12abc", 12), (" 7", 7), ("-3", -3)],
)
def test_client_uat_is_read_as_clerk_reads_it_by_authenticate_request(verifier, cookie, expected):
    """`Number.parseInt(value) || 0`, so the same cookie means the same thing here and in Clerk's SDK."""
    auth = request_auth.authenticate_request(verifier, "GET", {}, {"__client_uat": cookie}, request_auth.Instance())
    assert auth.session is None and auth.client_uat == expected


# --- token classes and claim types Clerk's SDK refuses ------------------------------------------------


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "JWS", "jwt", 1, ["JWT"]])
def test_header_typ_must_be_jwt_when_present(verifier, minter, typ):
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(minter.mint(headers={"typ": typ}))


def test_header_typ_jwt_or_absent_is_fine(verifier, minter):
    assert verifier.verify(minter.mint(headers={"typ": "JWT"}))
    untyped = minter.mint("user_untyped", headers={"typ": None})  # PyJWT leaves `typ` out
    assert "typ" not in jwt.get_unverified_header(untyped)
    assert verifier.verify(untyped).user_id == "user_untyped"


@pytest.mark.parametrize("cat", ["cl_B7d4PD222AAA", "cl_B7d4PD333AAA", "other", 1, None])
def test_non_session_categories_are_refused(verifier, minter, cat):
    """A JWT template or M2M token signed by the same instance key is not a session."""
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(minter.mint(headers={"cat": cat}))


@pytest.mark.parametrize("cat", ["cl_B7d4PD111AAA", "cl_I7d4PD111III"])
def test_session_categories_are_accepted(verifier, minter, cat):
    assert verifier.verify(minter.mint(headers={"cat": cat}))


def test_machine_subject_is_refused(verifier, minter):
    with pytest.raises(tokens.InvalidToken):
        verifier.verify(minter.mint("mch_machine"))


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("kind", ["string", "bool", "null", "list"])
def test_time_claims_must_be_numbers(verifier, minter, claim, kind):
    value = minter.claims()[claim]
    bad = {"string": str(value), "bool": True, "null": None, "list": [value]}[kind]
    claims = {**minter.claims(), claim: bad}
    token = jwt.encode(claims, minter.private_key, algorithm="RS256", headers={"kid": minter.kid})
    with pytest.raises(tokens.InvalidToken) as refused:
        verifier.verify(token)
    assert not isinstance(refused.value, tokens.ExpiredToken)


def test_float_times_are_numbers(verifier, minter):
    now = time.time()
    assert verifier.verify(minter.mint(exp=now + 60.5, iat=now - 0.5, nbf=now - 10.25))


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": -60}, tokens.EXPIRED),
        ({"nbf": 60}, tokens.NOT_ACTIVE_YET),
        ({"iat": 60, "nbf": None}, tokens.IAT_IN_THE_FUTURE),
    ],
)
def test_time_window_errors_are_the_refreshable_kind(verifier, minter, overrides, reason):
    """Clerk hands all three off to a handshake (a fresh token fixes them)."""
    now = int(time.time())
    with pytest.raises(tokens.ExpiredToken) as refused:
        verifier.verify(minter.mint(**{k: (now + v if v is not None else None) for k, v in overrides.items()}))
    assert refused.value.reason == reason


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
