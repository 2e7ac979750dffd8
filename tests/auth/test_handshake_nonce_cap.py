"""Made-up `__clerk_handshake_nonce` values cannot spend the shop's Backend API quota: each process
resolves at most CLERK_HANDSHAKE_NONCE_CAP of them per window; over it the nonce is ignored and the
request's own cookies decide. Through the app, with a counting Backend API on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from werkzeug import Response

from tests.support import live_server, wait_for

LIVE_KEY = "pk_live_Y2xlcmsuc2hvcC50ZXN0JA"  # clerk.shop.test, a production instance: the nonce comes in a cookie
PAGE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document"}
CAP = 10
OVER_THE_CAP = "Clerk handshake nonces over the cap"


class BackendAPI:
    """Clerk's `GET /v1/clients/handshake_payload`: directives for the nonces it issued, 404 for any
    other; counts every call."""

    def __init__(self, server):
        self.payloads: dict[str, list[str]] = {}
        self.calls = 0
        self._lock = threading.Lock()
        server.expect_request("/v1/clients/handshake_payload").respond_with_handler(self.handle)
        self.url = server.url_for("/v1")

    def handle(self, request):
        with self._lock:
            self.calls += 1
        nonce = request.args.get("nonce")
        if nonce not in self.payloads:
            body = {"errors": [{"code": "resource_not_found", "message": "handshake nonce not found"}]}
            return Response(json.dumps(body), status=404, content_type="application/json")
        return Response(json.dumps({"directives": self.payloads.pop(nonce)}), content_type="application/json")

    def issue(self, nonce: str, token: str) -> None:
        """A nonce Clerk's Frontend API handed to a browser: it stands for a fresh session cookie."""
        self.payloads[nonce] = [f"__session={token}; Path=/; SameSite=Lax", f"__client_uat={int(time.time())}; Path=/"]


@pytest.fixture
def backend(httpserver) -> BackendAPI:
    return BackendAPI(httpserver)


@pytest.fixture
def capped_app(make_app, backend):
    return make_app(
        CLERK_PUBLISHABLE_KEY=LIVE_KEY,
        CLERK_SECRET_KEY="sk_live_nonce_cap",
        CLERK_API_URL=backend.url,
        CLERK_HANDSHAKE_NONCE_CAP=str(CAP),
        CLERK_HANDSHAKE_NONCE_WINDOW_SECONDS="2",
    )


def with_nonce(app, nonce: str, *, in_query: bool = False):
    client = app.test_client()
    if in_query:
        return client, f"?__clerk_handshake_nonce={nonce}"
    client.set_cookie("__clerk_handshake_nonce", nonce)
    return client, ""


def test_a_hundred_made_up_nonces_cost_at_most_the_cap_and_are_signed_out(capped_app, backend, caplog):
    # Whatever the headers say (page navigation or not), in a cookie or in the query.
    kinds = [("/account", PAGE), ("/", PAGE), ("/api/me", {"Accept": "application/json"}), ("/", {})]
    answers = []
    with caplog.at_level(logging.WARNING, logger="shop.clerk.handshake"):
        for index in range(100):
            path, headers = kinds[index % len(kinds)]
            client, query = with_nonce(capped_app, f"made-up-{index}", in_query=index % 3 == 0)
            answers.append((path, client.get(path + query, headers=headers)))
    assert backend.calls == CAP
    for path, response in answers:  # signed out, as without any nonce: never a 500
        if path == "/account":
            assert response.status_code == 302 and "/sign-in" in response.headers["Location"]
        elif path == "/":
            assert response.status_code == 200 and b">Sign in</a>" in response.data
        else:
            assert (response.status_code, response.json) == (401, {"error": "Not signed in"})
    # One line for the window, not one per refused request.
    assert sum(OVER_THE_CAP in record.getMessage() for record in caplog.records) == 1


def test_over_the_cap_a_real_nonce_waits_for_the_window_then_works(capped_app, backend, make_user, tokens):
    make_user("user_real", first_name="Ada", last_name="Real")
    for index in range(CAP + 5):
        client, _ = with_nonce(capped_app, f"made-up-{index}")
        assert client.get("/account", headers=PAGE).status_code == 302
    assert backend.calls == CAP
    backend.issue("real", tokens.mint("user_real"))
    client, _ = with_nonce(capped_app, "real")
    ignored = client.get("/account", headers=PAGE)
    assert ignored.status_code == 302 and "/sign-in" in ignored.headers["Location"]  # the cookies decided
    assert backend.calls == CAP  # the real nonce was not looked up either: it is still good at Clerk

    def signed_in():
        response = client.get("/account", headers=PAGE)
        return response if response.status_code == 200 else None

    response = wait_for(signed_in, timeout=6, what="the window to pass and the real nonce to sign in")
    assert b"Ada Real" in response.data
    assert backend.calls == CAP + 1


def test_real_handshakes_do_not_use_up_the_cap(capped_app, backend, make_user, tokens):
    make_user("user_busy", first_name="Busy", last_name="Shopper")
    for index in range(3 * CAP):  # many shoppers coming back through Clerk's handshake at once
        backend.issue(f"real-{index}", tokens.mint("user_busy"))
        client, _ = with_nonce(capped_app, f"real-{index}")
        response = client.get("/account", headers=PAGE)
        assert response.status_code == 200 and b"Busy Shopper" in response.data
    assert backend.calls == 3 * CAP
    for index in range(3 * CAP):  # and the cap still stands against made-up ones
        client, _ = with_nonce(capped_app, f"made-up-{index}")
        client.get("/account", headers=PAGE)
    assert backend.calls == 4 * CAP


def test_concurrent_made_up_nonces_cannot_overshoot_the_cap(capped_app, backend):
    with live_server(capped_app) as url:

        def attempt(index: int) -> int:
            return requests.get(
                f"{url}/account",
                headers={**PAGE, "Cookie": f"__clerk_handshake_nonce=made-up-{index}"},
                allow_redirects=False,
                timeout=10,
            ).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(attempt, range(100)))
    assert statuses == [302] * 100
    assert backend.calls == CAP


def test_the_cap_is_a_setting(make_app, backend):
    app = make_app(
        CLERK_PUBLISHABLE_KEY=LIVE_KEY,
        CLERK_SECRET_KEY="sk_live_nonce_cap",
        CLERK_API_URL=backend.url,
        CLERK_HANDSHAKE_NONCE_CAP="3",
    )
    for index in range(20):
        client, _ = with_nonce(app, f"made-up-{index}")
        client.get("/", headers=PAGE)
    assert backend.calls == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CLERK_HANDSHAKE_NONCE_CAP", "-1"),
        ("CLERK_HANDSHAKE_NONCE_CAP", "ten"),
        ("CLERK_HANDSHAKE_NONCE_CAP", "2.5"),
        ("CLERK_HANDSHAKE_NONCE_WINDOW_SECONDS", "-1"),
        ("CLERK_HANDSHAKE_NONCE_WINDOW_SECONDS", "soon"),
    ],
)
def test_a_bad_cap_setting_stops_the_start_with_one_sentence(make_app, name, value):
    from shop.config import ConfigError

    with pytest.raises(ConfigError) as refused:
        make_app(**{name: value})
    assert f"{name} must be" in str(refused.value)
