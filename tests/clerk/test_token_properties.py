"""Whatever bytes arrive as a session token, cookie or header, the answer is "signed out", never an exception.

Hypothesis generates JWT-shaped strings with arbitrary JSON headers and claims (signed with the
run's real key, so the claim checks are reached, or not signed at all), and arbitrary header and
cookie values; the same inputs go through the app, where `/` and `/cart` must never answer 5xx.
"""

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop.clerk import handshake, keys, request_auth, tokens
from tests.conftest import TOKENS
from tests.support import TEST_ISSUER, TEST_PUBLISHABLE_KEY

INSTANCE = request_auth.Instance(
    frontend_api_host="clerk.shop.test", cookie_suffix=keys.cookie_suffix(TEST_PUBLISHABLE_KEY)
)
VERIFIER = tokens.SessionVerifier(pem_key=TOKENS.public_pem, issuer=TEST_ISSUER, authorized_parties=["http://x.test"])
ROUTE = handshake.Handshake("https://clerk.shop.test", lambda nonce: [])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
now = int(time.time())
interesting_header = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["RS256", "RS384", "HS256", "none", ""]) | json_values,
        "kid": st.sampled_from([TOKENS.kid, ""]) | json_values,
        "typ": st.sampled_from(["JWT", "at+jwt"]) | json_values,
        "cat": st.sampled_from(["cl_B7d4PD111AAA", "cl_B7d4PD333AAA"]) | json_values,
        "crit": json_values,
    },
)
interesting_claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.sampled_from(["user_a", "mch_a", ""]) | json_values,
        "sid": st.just("sess_a") | json_values,
        "iss": st.just(TEST_ISSUER) | json_values,
        "azp": st.sampled_from(["http://x.test", "http://y.test"]) | json_values,
        "exp": st.integers(now - 100, now + 100) | json_values,
        "iat": st.integers(now - 100, now + 100) | json_values,
        "nbf": st.integers(now - 100, now + 100) | json_values,
        "sts": st.just("pending") | json_values,
    },
)
any_json = json_values | interesting_header | interesting_claims


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@st.composite
def jwt_shaped(draw) -> str:
    header = draw(interesting_header | any_json)
    claims = draw(interesting_claims | any_json)
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if draw(st.booleans()):
        signature = TOKENS.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = draw(st.binary(max_size=300))
    return f"{signing_input}.{b64(signature)}"


cookie_text = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=';,\\"'), max_size=60)
token_like = jwt_shaped() | cookie_text | st.text(max_size=40)


@given(
    token=token_like,
    other=token_like,
    uat=st.sampled_from(["0", "1", str(now), str(now + 500)]) | cookie_text,
    authorization=st.none() | st.builds(lambda t: f"Bearer {t}", token_like) | st.text(max_size=40),
    method=st.sampled_from(["GET", "POST"]),
)
@settings(max_examples=300, deadline=None)
def test_authenticate_request_never_raises(token, other, uat, authorization, method):
    cookies = {"__session": token, f"__session_{INSTANCE.cookie_suffix}": other, "__client_uat": uat}
    headers = {"Authorization": authorization} if authorization is not None else {}
    auth = request_auth.authenticate_request(VERIFIER, method, headers, cookies, INSTANCE)
    assert auth.session is None or auth.session.user_id == "user_a"


@given(
    token=token_like,
    query=st.lists(st.tuples(st.sampled_from(["__clerk_handshake", "__clerk_db_jwt", "q"]), token_like), max_size=3),
    cookies=st.dictionaries(
        st.sampled_from(["__session", "__client_uat", "__clerk_handshake", "__clerk_redirect_count", "__clerk_db_jwt"]),
        token_like,
    ),
    production=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_the_handshake_decision_never_raises(token, query, cookies, production):
    instance = request_auth.Instance(frontend_api_host="clerk.shop.test", production=production)
    incoming = handshake.Incoming(
        "GET", "http://shop.test/orders", tuple(query), {"Accept": "text/html"}, {"__session": token, **cookies}
    )
    decision = handshake.authenticate(incoming, VERIFIER, instance, ROUTE)
    assert decision.status in (handshake.SIGNED_IN, handshake.SIGNED_OUT, handshake.HANDSHAKE_STATUS)


def latin1(value: str) -> str:
    """What an HTTP header can carry: bytes, shown as latin-1; no line breaks (they end the header)."""
    return value.encode("utf-8").decode("latin-1").replace("\r", "").replace("\n", "")


@pytest.mark.parametrize("path", ["/", "/cart"])
@given(token=token_like, uat=cookie_text, authorization=st.none() | token_like)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_pages_never_answer_5xx_whatever_the_token(client, path, token, uat, authorization):
    headers = {"Cookie": f"__session={latin1(token)}; __client_uat={uat}", "Accept": "text/html"}
    if authorization is not None:
        headers["Authorization"] = latin1(f"Bearer {authorization}")
    response = client.get(path, headers=headers)
    assert response.status_code < 500, response.data[:300]


@pytest.mark.parametrize(
    "cookie",
    [
        "__session=eyJhbGciOiJSUzI1NiIsImtpZCI6MX0.eyJzdWIiOiJ4In0.AAAA",  # kid a number: the issue's example
        "__session=eyJhbGciOiJSUzI1NiIsImtpZCI6bnVsbH0.eyJzdWIiOiJ4In0.AAAA",  # kid null
        "__session=eyJhbGciOiJSUzI1NiIsImtpZCI6W119.eyJzdWIiOiJ4In0.AAAA",  # kid a list
        "__session=eyJhbGciOiJSUzI1NiIsImNyaXQiOlsieCJdfQ.eyJzdWIiOiJ4In0.AAAA",  # unknown crit
        "__session=WzFd.WzFd.AAAA",  # header and claims are JSON arrays
    ],
)
@pytest.mark.parametrize("path", ["/", "/cart"])
def test_odd_jwt_headers_are_signed_out_not_500(client, cookie, path):
    response = client.get(path, headers={"Cookie": cookie, "Accept": "text/html"})
    assert response.status_code < 500


def test_a_signed_token_whose_azp_is_not_a_string_is_signed_out(client, make_user):
    make_user("user_a")
    client.set_cookie("__session", TOKENS.mint("user_a", azp=["http://localhost"]))
    client.set_cookie("__client_uat", "1")
    for path in ("/", "/cart"):
        assert client.get(path).status_code < 500
