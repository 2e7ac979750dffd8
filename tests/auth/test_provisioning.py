"""First sign-in before the webhook: a stand-in Backend API over HTTP on 127.0.0.1."""

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select
from werkzeug import Response

from shop.extensions import db
from shop.models import Role, User
from tests.support import clerk_user, live_server

SECRET = "sk_test_provisioning"


class BackendAPI:
    """Clerk's `GET /v1/users/{id}`, from a dict of users; counts calls."""

    def __init__(self, server, users):
        self.users = users
        self.calls = 0
        self._lock = threading.Lock()
        server.expect_request(uri=re.compile(r"/v1/users/.+")).respond_with_handler(self.handle)
        self.url = server.url_for("/v1")

    def handle(self, request):
        with self._lock:
            self.calls += 1
        assert request.headers["Authorization"] == f"Bearer {SECRET}"
        user_id = request.path.rsplit("/", 1)[-1]
        if user_id not in self.users:
            body = {"errors": [{"message": "not found", "long_message": "not found", "code": "resource_not_found"}]}
            return Response(json.dumps(body), status=404, content_type="application/json")
        return Response(json.dumps(self.users[user_id]), content_type="application/json")


@pytest.fixture
def provisioning_app(make_app, httpserver):
    def build(users):
        api = BackendAPI(httpserver, users)
        return make_app(CLERK_SECRET_KEY=SECRET, CLERK_API_URL=api.url), api

    return build


def row(app, clerk_id):
    with app.app_context():
        return db.session.scalar(select(User).where(User.clerk_id == clerk_id))


def test_first_sign_in_creates_the_row_through_the_mirror(provisioning_app, tokens):
    app, api = provisioning_app(
        {"user_new": clerk_user("user_new", email="new@example.com", public_metadata={"role": "ADMIN"})}
    )
    client = app.test_client()
    client.set_cookie("__session", tokens.mint("user_new"))
    response = client.get("/api/me")
    assert response.status_code == 200
    assert response.json["email"] == "new@example.com"
    assert response.json["role"] == "CLIENT"
    created = row(app, "user_new")
    assert created.clerk_updated_at == 1_700_000_000_000
    assert api.calls == 1
    client.get("/api/me")
    assert api.calls == 1  # the row exists now: no second call


def test_ten_concurrent_first_requests_create_one_row(provisioning_app, tokens):
    app, _ = provisioning_app({"user_race": clerk_user("user_race", email="race@example.com")})
    token = tokens.mint("user_race")
    barrier = threading.Barrier(10)

    def first_request(url):
        barrier.wait()
        return requests.get(f"{url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)

    with live_server(app) as url, ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(first_request, [url] * 10))
    assert [r.status_code for r in responses] == [200] * 10
    assert {r.json()["id"] for r in responses} == {row(app, "user_race").id}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_api_down_gives_the_account_being_set_up_page(make_app, tokens):
    app = make_app(CLERK_SECRET_KEY=SECRET, CLERK_API_URL="http://127.0.0.1:9/v1")  # nothing listens on port 9
    client = app.test_client()
    client.set_cookie("__session", tokens.mint("user_waiting"))
    client.set_cookie("__clerk_db_jwt", "dvb_test")  # clerk-js keeps one on development instances
    page = client.get("/account", headers={"Accept": "text/html"})
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "5"
    assert b"being set up" in page.data
    assert SECRET.encode() not in page.data
    api = client.get("/api/me")
    assert api.status_code == 503 and "being set up" in api.json["error"]
    assert row(app, "user_waiting") is None


def test_no_secret_key_waits_for_the_webhook(make_app, tokens):
    app = make_app()
    client = app.test_client()
    client.set_cookie("__session", tokens.mint("user_waiting"))
    assert client.get("/api/me").status_code == 503


def test_user_clerk_no_longer_has_is_signed_out_and_tombstoned(provisioning_app, tokens):
    app, _ = provisioning_app({})
    client = app.test_client()
    client.set_cookie("__session", tokens.mint("user_deleted_meanwhile"))
    assert client.get("/api/me").status_code == 401
    assert row(app, "user_deleted_meanwhile").deleted_at is not None


def test_role_is_the_shops_even_on_first_sign_in(provisioning_app, tokens):
    user = clerk_user("user_meta", unsafe_metadata={"role": "ADMIN"}, public_metadata={"role": "ADMIN"})
    app, _ = provisioning_app({"user_meta": user})
    client = app.test_client()
    client.set_cookie("__session", tokens.mint("user_meta"))
    assert client.get("/admin/").status_code == 403
    assert row(app, "user_meta").role == Role.CLIENT


def test_an_answer_about_another_user_is_refused(provisioning_app, tokens):
    app, api = provisioning_app({"user_asked": clerk_user("user_other", email="other@example.com")})
    client = app.test_client()
    client.set_cookie("__session", tokens.mint("user_asked"))
    response = client.get("/api/me")
    assert response.status_code == 503 and "being set up" in response.json["error"]
    assert api.calls == 1
    assert row(app, "user_asked") is None and row(app, "user_other") is None


def test_first_sign_in_mirrors_the_whole_user(provisioning_app, tokens):
    whole = clerk_user(
        "user_whole",
        email="whole@example.com",
        public_metadata={"plan": "pro"},
        private_metadata=None,
        unsafe_metadata={"marketing_opt_in": True},
        phone_numbers=[{"id": "idn_p", "object": "phone_number", "phone_number": "+15555550123"}],
        primary_phone_number_id="idn_p",
        locked=True,
    )
    app, _ = provisioning_app({"user_whole": whole})
    client = app.test_client()
    client.set_cookie("__session", tokens.mint("user_whole"))

    assert client.get("/api/me").status_code == 200

    created = row(app, "user_whole")
    assert (created.public_metadata, created.private_metadata, created.unsafe_metadata) == (
        {"plan": "pro"},
        {},
        {"marketing_opt_in": True},
    )
    assert (created.phone, created.marketing_opt_in, created.locked, created.banned) == (
        "+15555550123",
        True,
        True,
        False,
    )
