"""The Backend API client against a real HTTP server on 127.0.0.1: retries, errors, shapes."""

import json
import socket
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from shop.clerk.api import ClerkAPI, ClerkAPIError, clerk_api
from tests.support import clerk_user, vector

SECRET = "sk_test_c3VwZXJzZWNyZXRrZXlmb3J0ZXN0cw"


class QuicklyStoppedHTTPServer(HTTPServer):
    def thread_target(self) -> None:
        # stop() waits for serve_forever's next poll, every 0.5 s by default: half a second per test.
        self.server.serve_forever(poll_interval=0.01)


@pytest.fixture
def server():
    server = QuicklyStoppedHTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def api(server, **options):
    options.setdefault("backoff", 0.01)
    return ClerkAPI(server.url_for("/v1"), SECRET, **options)


def clerk_error(status, code, long_message, message="", trace="trace_123"):
    body = {"errors": [{"message": message or long_message, "long_message": long_message, "code": code}]}
    if trace:
        body["clerk_trace_id"] = trace
    return Response(json.dumps(body), status=status, content_type="application/json")


def test_list_users_sends_the_key_and_the_page(server):
    users = [clerk_user("user_1"), clerk_user("user_2")]
    server.expect_request(
        "/v1/users", query_string={"limit": "500", "offset": "1000", "order_by": "created_at"}
    ).respond_with_json(users)
    client = api(server)
    assert client.list_users(limit=500, offset=1000) == users
    [(request, _)] = server.log
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert client.calls == 1


def test_429_waits_for_retry_after_then_succeeds(server):
    server.expect_ordered_request("/v1/users/count").respond_with_response(
        Response(
            json.dumps({"errors": [{"code": "too_many_requests", "message": "Too many requests"}]}),
            status=429,
            headers={"Retry-After": "1"},
            content_type="application/json",
        )
    )
    server.expect_ordered_request("/v1/users/count").respond_with_json({"object": "total_count", "total_count": 7})
    client = api(server, backoff=0)
    started = time.monotonic()
    assert client.count_users() == 7
    assert time.monotonic() - started >= 1.0  # Retry-After honoured, not the (zero) backoff
    assert len(server.log) == 2
    assert client.calls == 2


def test_429_that_never_ends_says_so(server):
    server.expect_request("/v1/users").respond_with_response(
        Response("{}", status=429, headers={"Retry-After": "0"}, content_type="application/json")
    )
    client = api(server, retries=2)
    with pytest.raises(ClerkAPIError) as caught:
        client.list_users()
    assert caught.value.status == 429
    assert "rate limit" in str(caught.value)
    assert len(server.log) == 3
    assert client.calls == 3


def test_500_then_success(server):
    server.expect_ordered_request("/v1/users").respond_with_data("upstream broke", status=500)
    server.expect_ordered_request("/v1/users").respond_with_json([clerk_user("user_1")])
    client = api(server)
    assert [u["id"] for u in client.list_users()] == ["user_1"]
    assert len(server.log) == 2
    assert client.calls == 2


def test_5xx_every_time_gives_up_with_clerks_message(server):
    server.expect_request("/v1/users/user_1").respond_with_response(
        clerk_error(503, "service_unavailable", "Clerk is down for maintenance", trace="trace_5xx")
    )
    client = api(server, retries=2)
    with pytest.raises(ClerkAPIError) as caught:
        client.get_user("user_1")
    message = str(caught.value)
    assert caught.value.status == 503
    assert "HTTP 503 after 2 retries" in message
    assert "Clerk is down for maintenance" in message
    assert "trace_5xx" in message
    assert len(server.log) == 3


def test_connection_refused_is_retried_then_explained():
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ClerkAPI(f"http://127.0.0.1:{port}/v1", SECRET, retries=2, backoff=0.01, timeout=2)
    with pytest.raises(ClerkAPIError) as caught:
        client.list_users()
    message = str(caught.value)
    assert "connection refused" in message
    assert f"http://127.0.0.1:{port}/v1" in message
    assert "CLERK_API_URL" in message
    assert client.calls == 3  # the first attempt and two retries
    assert SECRET not in message


def test_slow_answer_times_out_and_is_retried(server):
    def slow_then_fast():
        calls = []

        def handler(request):
            calls.append(1)
            if len(calls) == 1:
                time.sleep(0.6)
            return Response(json.dumps({"object": "total_count", "total_count": 3}), content_type="application/json")

        return handler

    server.expect_request("/v1/users/count").respond_with_handler(slow_then_fast())
    client = api(server, timeout=0.3)
    assert client.count_users() == 3
    assert client.calls == 2


def test_invalid_secret_key_is_named_with_clerks_own_words(server):
    [entry] = [e for e in vector("clerk-docs_api_errors_subset.json")["entries"] if e["code"] == "clerk_key_invalid"]
    server.expect_request("/v1/users").respond_with_response(
        clerk_error(int(entry["status"]), entry["code"], entry["longMessage"], entry["shortMessage"], "trace_401")
    )
    client = api(server)
    with pytest.raises(ClerkAPIError) as caught:
        client.list_users()
    message = str(caught.value)
    assert (caught.value.status, caught.value.code) == (401, "clerk_key_invalid")
    assert message.startswith("Clerk rejected the secret key (clerk_key_invalid): The provided Clerk Secret Key")
    assert "CLERK_SECRET_KEY" in message
    assert "trace_401" in message
    assert SECRET not in message
    assert len(message.splitlines()) == 1
    assert len(server.log) == 1  # a 4xx is never retried


def test_other_4xx_is_not_retried(server):
    server.expect_request("/v1/users").respond_with_response(
        clerk_error(422, "form_param_value_invalid", "created_at does not match one of the allowed values")
    )
    client = api(server)
    with pytest.raises(ClerkAPIError) as caught:
        client.list_users()
    assert caught.value.code == "form_param_value_invalid"
    assert "HTTP 422" in str(caught.value)
    assert len(server.log) == 1


def test_a_body_that_is_not_json_is_an_error(server):
    server.expect_request("/v1/users").respond_with_data("<html>Welcome to nginx</html>", content_type="text/html")
    with pytest.raises(ClerkAPIError) as caught:
        api(server).list_users()
    assert "not JSON" in str(caught.value)
    assert "text/html" in str(caught.value)


def test_a_json_object_instead_of_an_array_is_an_error_not_an_empty_page(server):
    server.expect_request("/v1/users").respond_with_json({"data": [], "total_count": 0})
    with pytest.raises(ClerkAPIError) as caught:
        api(server).list_users()
    assert "a JSON object instead of a JSON array of users" in str(caught.value)


def test_get_user_returns_the_user_or_none_on_resource_not_found(server):
    fixture = vector("clerk-javascript_fixture_backend_user.json")
    server.expect_request("/v1/users/user_cafebabe").respond_with_json(fixture)
    server.expect_request("/v1/users/user_gone").respond_with_response(
        clerk_error(404, "resource_not_found", "No user was found with id user_gone")
    )
    client = api(server)
    assert client.get_user("user_cafebabe") == fixture
    assert client.get_user("user_gone") is None
    assert len(server.log) == 2  # a 404 is an answer, not retried


def test_a_404_that_is_not_clerks_is_an_error_not_a_deleted_user(server):
    # A wrong CLERK_API_URL must never look like "every user was deleted".
    server.expect_request("/v1/users/user_1").respond_with_data("Not Found", status=404)
    with pytest.raises(ClerkAPIError) as caught:
        api(server).get_user("user_1")
    assert "CLERK_API_URL" in str(caught.value)


def test_user_ids_are_quoted_into_the_path(server):
    server.expect_request("/v1/users/user_a/../count").respond_with_response(
        clerk_error(404, "resource_not_found", "No user")
    )
    assert api(server).get_user("user_a/../count") is None
    [(request, _)] = server.log
    assert request.environ["REQUEST_URI"] == "/v1/users/user_a%2F..%2Fcount"


def test_count_users_checks_the_shape(server):
    server.expect_ordered_request("/v1/users/count").respond_with_json({"object": "total_count", "total_count": 12})
    server.expect_ordered_request("/v1/users/count").respond_with_json({"count": 12})
    client = api(server)
    assert client.count_users() == 12
    with pytest.raises(ClerkAPIError):
        client.count_users()


def test_the_apps_client_needs_a_secret_key(make_app):
    app = make_app()
    with app.app_context(), pytest.raises(ClerkAPIError) as caught:
        clerk_api()
    assert str(caught.value).startswith("CLERK_SECRET_KEY is not set")


def test_the_apps_client_is_built_once_from_settings(make_app, server):
    app = make_app(CLERK_SECRET_KEY=SECRET, CLERK_API_URL=server.url_for("/v1"))
    server.expect_request("/v1/users/count").respond_with_json({"object": "total_count", "total_count": 1})
    with app.app_context():
        client = clerk_api()
        assert clerk_api() is client
        assert client.count_users() == 1
    [(request, _)] = server.log
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
