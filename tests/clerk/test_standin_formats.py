"""The stand-in's Backend API speaks Clerk's formats: Clerk's official Python SDK reads every answer.

`clerk-backend-api` (PyPI, generated from Clerk's OpenAPI spec) validates each response against
the spec's models, so a missing required field or a wrong error shape fails here. The stand-in runs
on a real HTTP server; its users are made the way the browser makes them (POST /dev-clerk/sign-in).
"""

from __future__ import annotations

import json

import pytest
import requests
from clerk_backend_api import Clerk, models
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from shop import create_app
from shop.extensions import db
from shop.models import User
from tests.conftest import empty_all_tables
from tests.conftest import settings as app_settings
from tests.support import live_server, vector, wait_for


@pytest.fixture(scope="module")
def standin(database_url, tmp_path_factory):
    """The stand-in on a real server, with three users who signed in. One for the module: every test
    that uses it only reads (GETs its Backend API and avatars), so each still meets the same three
    users in the same state; starting it (a new RSA key, three sign-ins) cost half a second a test."""
    folder = tmp_path_factory.mktemp("standin-formats")
    app = create_app(app_settings(database_url, SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(folder)))
    try:
        with live_server(app) as url:
            people = [
                ("ada@example.com", "Ada", "Lovelace"),
                ("Grace@Example.com", "Grace", "Hopper"),
                ("al@example.com", "Alan", ""),
            ]
            for email, first, last in people:
                answer = requests.post(
                    f"{url}/dev-clerk/sign-in",
                    json={"email": email, "first_name": first, "last_name": last},
                    timeout=10,
                )
                assert answer.status_code == 200
            # Each sign-in sends the app its user.created webhook from a thread of its own: all three are
            # in before the tests start, so none lands in the database while another test runs.
            wait_for(lambda: _mirrored_users(app) == 3, what="the stand-in's three user.created webhooks")
            sdk = Clerk(bearer_auth=app.config["STANDIN_SECRET_KEY"], server_url=f"{url}/dev-clerk/v1")
            yield url, app.config["STANDIN_SECRET_KEY"], sdk
    finally:
        empty_all_tables(database_url)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _mirrored_users(app) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(User))
        db.session.rollback()
        return count


def test_the_sdk_reads_users_list_get_and_count(standin):
    _, _, sdk = standin
    users = sdk.users.list(request={"limit": 500})
    assert [u.first_name for u in users] == ["Alan", "Grace", "Ada"]  # newest first, Clerk's default
    ada = sdk.users.get(user_id=users[2].id)
    assert ada.email_addresses[0].email_address == "ada@example.com"
    assert ada.email_addresses[0].verification.object == "verification_otp"
    assert ada.email_addresses[0].verification.status == "verified"
    assert ada.primary_email_address_id == ada.email_addresses[0].id
    assert ada.image_url.startswith("http") and ada.has_image is False
    assert sdk.users.count().total_count == 3


def test_the_sdk_filters_by_email_and_user_id(standin):
    _, _, sdk = standin
    found = sdk.users.list(request={"email_address": ["grace@example.com", "nobody@example.com"]})
    assert [u.first_name for u in found] == ["Grace"]  # case-insensitive, unknown addresses ignored
    assert sdk.users.count(request={"email_address": ["ADA@example.com"]}).total_count == 1
    ada_id = found and sdk.users.list(request={"email_address": ["ada@example.com"]})[0].id
    assert [u.id for u in sdk.users.list(request={"user_id": [ada_id]})] == [ada_id]
    assert ada_id not in [u.id for u in sdk.users.list(request={"user_id": [f"-{ada_id}"]})]
    assert [u.first_name for u in sdk.users.list(request={"query": "hop"})] == ["Grace"]


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("created_at", ["Ada", "Grace", "Alan"]),
        ("+created_at", ["Ada", "Grace", "Alan"]),
        ("-created_at", ["Alan", "Grace", "Ada"]),
        ("first_name", ["Ada", "Alan", "Grace"]),
        ("-email_address", ["grace", "al", "ada"]),
        ("+last_name", ["Alan", "Grace", "Ada"]),
        ("-updated_at", ["Alan", "Grace", "Ada"]),
    ],
)
def test_order_by_variants(standin, order_by, expected):
    _, _, sdk = standin
    users = sdk.users.list(request={"order_by": order_by})
    if order_by.endswith("email_address"):
        assert [u.email_addresses[0].email_address.split("@")[0].lower() for u in users] == expected
    else:
        assert [u.first_name for u in users] == expected


def test_paging_with_limit_and_offset(standin):
    _, _, sdk = standin
    pages = [sdk.users.list(request={"limit": 2, "offset": offset, "order_by": "created_at"}) for offset in (0, 2, 4)]
    assert [[u.first_name for u in page] for page in pages] == [["Ada", "Grace"], ["Alan"], []]


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"limit": 0}, "form_param_value_invalid", "limit"),
        ({"limit": 501}, "form_param_value_invalid", "limit"),
        ({"offset": -1}, "form_param_value_invalid", "offset"),
        ({"order_by": "password"}, "form_param_value_invalid", "order_by"),
        ({"order_by": "--created_at"}, "form_param_value_invalid", "order_by"),
    ],
)
def test_bad_parameters_are_clerks_422(standin, params, code, param):
    _, _, sdk = standin
    with pytest.raises(models.ClerkErrors) as caught:
        sdk.users.list(request=params)
    assert caught.value.raw_response.status_code == 422
    error = caught.value.data.errors[0]
    assert (error.code, error.meta["param_name"]) == (code, param)
    assert caught.value.raw_response.json()["clerk_trace_id"]  # the SDK's model has no field for it


@pytest.mark.parametrize("limit", ["ten", "5_0", " 5", "1e3", "9" * 5000, "٣"])
def test_a_limit_that_is_not_a_number_is_refused_as_clerk_does(standin, limit):
    url, secret, _ = standin
    answer = requests.get(
        f"{url}/dev-clerk/v1/users", params={"limit": limit}, headers={"Authorization": f"Bearer {secret}"}, timeout=5
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["code"] == "form_param_format_invalid"


def test_unknown_user_is_clerks_404(standin):
    _, _, sdk = standin
    with pytest.raises(models.ClerkErrors) as caught:
        sdk.users.get(user_id="user_nobody")
    assert caught.value.raw_response.status_code == 404
    assert caught.value.data.errors[0].code == "resource_not_found"
    assert caught.value.raw_response.json()["clerk_trace_id"]  # the SDK's model has no field for it


def test_a_wrong_secret_key_is_clerks_401(standin):
    url, _, _ = standin
    sdk = Clerk(bearer_auth="sk_test_wrong", server_url=f"{url}/dev-clerk/v1")
    with pytest.raises(models.ClerkErrors) as caught:
        sdk.users.list()
    assert caught.value.raw_response.status_code == 401
    assert caught.value.data.errors[0].code == "clerk_key_invalid"


@pytest.mark.parametrize("path", ["/v1/no-such-thing", "/v1/users/user_x/no-such-thing", "/v1/"])
def test_unknown_backend_paths_answer_json_404(standin, path):
    url, secret, _ = standin
    answer = requests.get(f"{url}/dev-clerk{path}", headers={"Authorization": f"Bearer {secret}"}, timeout=5)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert body["errors"][0]["code"] == "resource_not_found" and body["clerk_trace_id"]


def test_users_have_every_field_of_clerks_published_example(standin):
    """Field for field, the User keys of Clerk's own examples (OpenAPI webhook and clerk/javascript fixture)."""
    url, secret, _ = standin
    answer = requests.get(f"{url}/dev-clerk/v1/users", headers={"Authorization": f"Bearer {secret}"}, timeout=5)
    user = answer.json()[0]
    example = vector("openapi-specs_webhook_user_created.json")["data"]
    assert set(example) <= set(user)
    fixture_address = vector("clerk-javascript_fixture_backend_user.json")["email_addresses"][0]
    assert set(fixture_address) - {"verification"} <= set(user["email_addresses"][0])
    assert set(fixture_address["verification"]) - {"external_verification_redirect_url"} <= set(
        user["email_addresses"][0]["verification"]
    )
    assert len(str(user["created_at"])) == 13  # milliseconds, as live Clerk data
    json.dumps(user)  # plain JSON all the way down


def test_the_avatar_url_is_an_image(standin):
    url, secret, _ = standin
    user = requests.get(f"{url}/dev-clerk/v1/users", headers={"Authorization": f"Bearer {secret}"}, timeout=5).json()[0]
    image = requests.get(user["image_url"], timeout=5)
    assert image.status_code == 200 and image.headers["Content-Type"].startswith("image/svg+xml")
    assert b"<script" not in image.content
    forged = requests.get(f"{url}/dev-clerk/img/PHNjcmlwdD4", timeout=5)  # base64("<script>") is not JSON
    assert forged.status_code == 200 and b"<script" not in forged.content


@pytest.fixture
def standin_app(make_app, tmp_path):
    return make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))


# One app for every example (the function-scoped fixture is made once per test, which is what is wanted).
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.dictionaries(
        st.sampled_from(["limit", "offset", "order_by", "email_address", "user_id", "query"]),
        st.text(max_size=30),
        max_size=4,
    )
)
def test_any_query_is_answered_in_clerks_format_never_500(standin_app, params):
    """Whatever the parameters: a JSON array of at most `limit` users, or Clerk's JSON error. Never a 500."""
    secret = standin_app.config["STANDIN_SECRET_KEY"]
    answer = standin_app.test_client().get(
        "/dev-clerk/v1/users", query_string=params, headers={"Authorization": f"Bearer {secret}"}
    )
    # A NUL anywhere in a query string is refused by the app's own input rule (shop.inputs) before
    # the stand-in sees it: 400, as on every route.
    expected = (400,) if any("\x00" in f"{key}{value}" for key, value in params.items()) else (200, 422)
    assert answer.status_code in expected, (params, answer.status_code)
    body = answer.get_json()
    if answer.status_code == 200:
        assert isinstance(body, list) and len(body) <= int(params.get("limit", 10))
    elif answer.status_code == 422:
        assert body["errors"][0]["code"].startswith("form_param_") and body["clerk_trace_id"]
