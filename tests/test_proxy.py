"""The production topology: nginx (deploy/nginx/, Debian's package) in front of gunicorn (issue 10, item 4).

Both run as `make serve-proxy` runs them (deploy/proxy.py): unprivileged, nginx's files under a
temporary directory. bench/slow_clients.py runs the same load against bare gunicorn, for contrast.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import socket

import pytest

from bench.harness import free_port
from deploy import proxy
from shop import PROJECT_ROOT
from shop.config import WEBHOOK_MAX_BYTES
from shop.static_files import IMMUTABLE, Fingerprints
from tests.servers import Server, gunicorn, read_head
from tests.slow_clients import HealthChecks, SlowClients
from tests.support import wait_for

if not proxy.NGINX.exists():
    pytest.skip(
        "NGINX IS NOT INSTALLED (/usr/sbin/nginx): the production-topology tests did not run; apt-get install nginx",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def topology(database_url, tmp_path_factory):
    """gunicorn with the committed gunicorn.conf.py (3 workers x 2 threads), nginx in front."""
    directory = tmp_path_factory.mktemp("proxy")
    with gunicorn(database_url, directory / "gunicorn.log", "--workers", "3", "--threads", "2") as upstream:
        port = free_port()
        with proxy.nginx(directory / "nginx", listen=f"127.0.0.1:{port}", upstream=f"127.0.0.1:{upstream.port}"):
            yield Server("127.0.0.1", port, directory / "nginx" / "logs" / "shop-access.log"), upstream


def test_health_keeps_answering_while_100_slow_clients_hold_connections(topology):
    front, _ = topology
    checks = HealthChecks()
    with SlowClients(front.host, front.port, slow_headers=50, slow_bodies=50) as clients:
        checks.run(front.host, front.port, seconds=12)  # past nginx's 10 s header timeout
    assert clients.opened >= 100
    assert len(checks.latencies) >= 100
    assert checks.within(1.0) >= 0.99, (checks.within(1.0), checks.percentile(0.99), checks.failures)


def _from(address: str, server: Server, request: bytes) -> tuple[int, dict[str, str]]:
    """Send `request` from the local address `address` (any of 127.0.0.0/8 is this machine)."""
    with socket.create_connection((server.host, server.port), timeout=10, source_address=(address, 0)) as connection:
        connection.sendall(request)
        status, headers, _ = read_head(connection)
    return status, headers


def _access_line(log, marker: str) -> str:
    return wait_for(
        lambda: next((line for line in log.read_text().splitlines() if marker in line), None),
        what=f"an access line with {marker!r} in {log}",
        interval=0.05,
    )


def test_the_client_address_reaches_the_app_and_cannot_be_forged(topology):
    front, upstream = topology
    forged = b"X-Forwarded-For: 203.0.113.66\r\nConnection: close\r\n\r\n"
    request = b"GET /api/health HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: %s\r\n"
    assert _from("127.0.0.2", front, request % b"through-the-proxy" + forged)[0] == 200
    # gunicorn's access line shows the address nginx saw, not the proxy's and not the forged one.
    assert _access_line(upstream.log, "through-the-proxy").startswith("127.0.0.2 ")

    # Straight to gunicorn from an address that is not the proxy: X-Forwarded-For is not believed.
    assert _from("127.0.0.3", upstream, request % b"around-the-proxy" + forged)[0] == 200
    assert _access_line(upstream.log, "around-the-proxy").startswith("127.0.0.3 ")
    assert "203.0.113.66" not in upstream.log.read_text()


def test_nginx_refuses_a_body_over_the_webhook_cap_before_gunicorn_sees_it(topology):
    front, upstream = topology
    with front.connect() as connection:
        connection.sendall(
            b"POST /api/webhooks/clerk?big=1 HTTP/1.1\r\nHost: shop.test\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {WEBHOOK_MAX_BYTES + 1}\r\n\r\n".encode()
        )
        status, _, _ = read_head(connection)
    assert status == 413
    assert "POST /api/webhooks/clerk" not in upstream.log.read_text()  # (the access log redacts queries)


def test_the_product_form_may_carry_an_image_through_nginx_and_nothing_else_may(topology):
    """Only the admin's product form gets room for an image (shop/admin/products.FORM_MAX_BYTES); a body of
    that size anywhere else is refused by nginx before gunicorn sees the request."""
    front, upstream = topology
    size = 3 * 1024 * 1024
    answers = {}
    for path in ("/admin/products/new", "/admin/products/7", "/cart/add"):
        with front.connect() as connection:
            connection.sendall(
                f"POST {path} HTTP/1.1\r\nHost: shop.test\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode()
            )
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.sendall(b"x" * size)  # nginx may refuse on the head and close: its answer waits
            answers[path], _, _ = read_head(connection)
    # The product form reaches the app (signed out and without a form token: refused there, not by size).
    assert answers["/admin/products/new"] != 413 and answers["/admin/products/7"] != 413, answers
    assert wait_for(lambda: '"POST /admin/products/7 ' in upstream.log.read_text())
    assert answers["/cart/add"] == 413, answers
    assert '"POST /cart/add ' not in upstream.log.read_text()


def test_the_apps_answers_pass_through_nginx(topology):
    front, _ = topology
    connection = http.client.HTTPConnection(front.host, front.port, timeout=10)
    connection.request("GET", "/api/me")
    answer = connection.getresponse()
    assert answer.status == 401
    assert answer.getheader("Content-Type") == "application/json"
    assert "Cookie" in answer.getheader("Vary", "")


def test_the_nginx_access_log_records_no_query_string(topology):
    front, _ = topology
    connection = http.client.HTTPConnection(front.host, front.port, timeout=10)
    connection.request("GET", "/admin/users?q=bob%40example.com", headers={"Referer": "http://x/?q=ann@example.com"})
    connection.getresponse().read()
    line = _access_line(front.log, "/admin/users")
    assert '"GET /admin/users?[redacted] HTTP/1.1"' in line
    assert "example.com" not in front.log.read_text()


def _get(server: Server, path: str, **headers: str) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    connection.request("GET", path, headers=headers)
    answer = connection.getresponse()
    return answer, answer.read()


def _fingerprinted(filename: str) -> str:
    return f"/static/{filename}?v={Fingerprints(PROJECT_ROOT / 'static').of(filename)}"


def test_nginx_compresses_pages_and_text_files(topology):
    front, _ = topology
    css = _fingerprinted("css/shop.css")
    for path in ("/", css, _fingerprinted("js/shop.js"), _fingerprinted("favicon.svg")):
        # Via: what a balancer in front adds; compression must not stop there.
        answer, body = _get(front, path, **{"Accept-Encoding": "gzip", "Via": "1.1 balancer"})
        assert answer.status == 200, path
        assert answer.getheader("Content-Encoding") == "gzip", path
        assert "Accept-Encoding" in answer.getheader("Vary", ""), path
        assert len(gzip.decompress(body)) > len(body), path
    plain, body = _get(front, css)  # a client that asks for no compression gets none
    assert plain.getheader("Content-Encoding") is None
    assert body == (PROJECT_ROOT / "static" / "css" / "shop.css").read_bytes()


def test_nginx_keeps_fingerprinted_static_files_and_asks_the_app_for_the_rest(topology):
    front, _ = topology
    versioned = _fingerprinted("products/wool-socks.svg")  # a file no other test here asks for
    first, body = _get(front, versioned)
    again, cached = _get(front, versioned)
    assert first.status == again.status == 200 and cached == body
    assert (first.getheader("X-Cache-Status"), again.getheader("X-Cache-Status")) == ("MISS", "HIT")
    assert again.getheader("Cache-Control") == IMMUTABLE

    # Without its version, or with another release's, a file is the app's to answer every time: never kept.
    for path in ("/static/products/wool-socks.svg", "/static/products/wool-socks.svg?v=0123456789ab"):
        for _ in range(2):
            answer, _ = _get(front, path)
            assert answer.status == 200, path
            assert answer.getheader("Cache-Control") == "no-cache", path
            assert answer.getheader("X-Cache-Status") != "HIT", path
