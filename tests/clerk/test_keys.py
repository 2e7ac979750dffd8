import pytest

from shop.clerk import keys
from tests.support import vector

KEY_VECTORS = vector("clerk-javascript_publishable_key_vectors.json")


@pytest.mark.parametrize(("host", "publishable_key"), KEY_VECTORS["buildPublishableKey_cases"]["cases"])
def test_frontend_api_host_decodes_from_clerks_vectors(host, publishable_key):
    assert keys.frontend_api_host(publishable_key) == host


def test_docs_example_and_issuer_url():
    example = KEY_VECTORS["docs_example"]
    assert keys.frontend_api_host(example["publishable_key"]) + "$" == example["decoded"]
    assert keys.frontend_api_url(example["publishable_key"]) == "https://example.accounts.dev"


@pytest.mark.parametrize(("publishable_key", "suffix"), KEY_VECTORS["getCookieSuffix_cases"]["cases"])
def test_cookie_suffix_matches_clerk_js(publishable_key, suffix):
    assert keys.cookie_suffix(publishable_key) == suffix


@pytest.mark.parametrize(
    "bad",
    ["", "pk_prod_Zm9vJA", "pk_test_", "pk_test_!!!!", "pk_test_Zm9v", "pk_test_JA", "pk_test_//79JA"],
)
def test_bad_publishable_keys(bad):
    with pytest.raises(keys.InvalidKey):
        keys.frontend_api_host(bad)


def test_pem_with_literal_newlines_is_accepted():
    pem = vector("clerk-javascript_session_jwt_vectors.json")["pemEncodedPublicKey"]
    assert keys.normalize_pem(pem.replace("\n", "\\n")) == pem.strip()
    with pytest.raises(keys.InvalidKey):
        keys.normalize_pem("-----BEGIN PUBLIC KEY-----\\nnope\\n-----END PUBLIC KEY-----")
