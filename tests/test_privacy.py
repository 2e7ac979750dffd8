"""Personal data stays out of access logs and caches (issue 10, item 10)."""

from __future__ import annotations

import time

import pytest
import requests

from shop.models import Role
from shop.store.seed import seed
from tests.servers import gunicorn
from tests.support import wait_for

# Every GET page or API that depends on who is signed in, reachable without path arguments.
PERSONAL = ["/", "/account", "/cart", "/checkout", "/orders", "/api/me", "/api/orders", "/sign-in"]
ADMIN = ["/admin/", "/admin/orders", "/admin/products", "/admin/products/new", "/admin/users", "/admin/webhooks"]


def _private(response) -> bool:
    cache_control = response.headers.get("Cache-Control", "")
    return "private" in cache_control and "no-store" in cache_control


def _varies_on_credentials(response) -> bool:
    return {"cookie", "authorization"} <= {value.lower() for value in response.vary}


@pytest.mark.parametrize("path", PERSONAL)
def test_a_signed_in_answer_is_private_and_varies_on_credentials(client, sign_in, path):
    sign_in("user_private")
    response = client.get(path)
    assert response.status_code < 500
    assert _private(response), (path, response.headers.get("Cache-Control"))
    assert _varies_on_credentials(response), (path, response.headers.get("Vary"))


@pytest.mark.parametrize("path", ADMIN)
def test_admin_pages_are_private(client, sign_in, path):
    sign_in("user_admin_private", role=Role.ADMIN)
    response = client.get(path)
    assert response.status_code == 200
    assert _private(response)
    assert _varies_on_credentials(response)


def test_a_bearer_answer_is_private(client, make_user, tokens):
    make_user("user_bearer_private")
    response = client.get("/api/me", headers={"Authorization": f"Bearer {tokens.mint('user_bearer_private')}"})
    assert response.status_code == 200
    assert _private(response)
    assert _varies_on_credentials(response)


def test_an_anonymous_answer_varies_on_credentials_and_may_be_cached(client):
    # A shared cache may keep the signed-out /api/me, but never hand it to someone with a cookie.
    response = client.get("/api/me")
    assert response.status_code == 401
    assert _varies_on_credentials(response)
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_a_page_carrying_a_csrf_token_is_private(app, client):
    with app.app_context():
        seed()
    response = client.get("/products/ceramic-mug")  # its add-to-cart form holds this browser's CSRF token
    assert response.status_code == 200
    assert _private(response)


def test_an_expired_session_cookie_is_enough_to_make_the_answer_private(client, tokens):
    client.set_cookie("__session", tokens.mint("user_expired", exp=int(time.time()) - 3600))
    response = client.get("/api/me")
    assert response.status_code == 401
    assert _private(response)


def test_static_files_and_health_stay_cacheable(client):
    for path in ("/static/favicon.svg", "/api/health"):
        response = client.get(path)
        assert "cookie" not in {value.lower() for value in response.vary}, path
        assert "no-store" not in response.headers.get("Cache-Control", ""), path


def test_the_access_log_records_no_query_string_or_e_mail(database_url, tmp_path):
    log = tmp_path / "gunicorn.log"
    with gunicorn(database_url, log, "--workers", "1") as server:
        requests.get(
            f"{server.url}/admin/users?q=bob%40example.com",
            headers={"Referer": f"{server.url}/?q=alice@example.com"},
            auth=("carol@example.com", "hunter2"),
            timeout=10,
        )
        requests.get(f"{server.url}/api/health?probe=dave@example.com", timeout=10)
        # the access line is written after the answer
        wait_for(lambda: "/api/health" in log.read_text(), what="the access line of /api/health", interval=0.05)
    text = log.read_text()
    lines = [line for line in text.splitlines() if '"GET /' in line]
    assert any('"GET /admin/users?[redacted] HTTP/1.1"' in line for line in lines), text
    assert any('"GET /api/health?[redacted] HTTP/1.1"' in line for line in lines), text
    for secret in ("example.com", "bob", "alice", "carol", "dave", "hunter2", "%40"):
        assert secret not in text, secret
