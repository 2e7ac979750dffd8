"""Request size limits, set once for the whole app (issue 10, item 3).

Over Flask's limits a request is answered 413 before its body is read: a page says one clear
sentence, the webhook answers JSON. The webhook keeps its own 1 MiB cap, chunked bodies included.
Werkzeug's test client sends no chunked bodies the way a real client does, so those go to gunicorn.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time

import pytest
import requests

from shop.config import FORM_MAX_PARTS, FORM_MEMORY_MAX_BYTES, REQUEST_MAX_BYTES, WEBHOOK_MAX_BYTES
from tests.servers import Server, gunicorn, read_head
from tests.support import clerk_user, event, signed_headers

MiB = 1024 * 1024
TOO_LARGE_SENTENCE = "What was sent is larger than this shop accepts: send something smaller."


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory) -> Server:
    with gunicorn(database_url, tmp_path_factory.mktemp("limits") / "gunicorn.log", "--workers", "1") as running:
        yield running


def test_a_150_mib_form_is_refused_413_before_its_body_is_read(server: Server):
    with server.connect() as connection:
        # Only the head: a server that reads the body before answering would wait here for ever.
        connection.sendall(
            b"POST /cart/add HTTP/1.1\r\nHost: shop.test\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n" + f"Content-Length: {150 * MiB}\r\n\r\n".encode()
        )
        status, headers, body = read_head(connection)
        assert status == 413
        assert headers["content-type"].startswith("text/html")
        while len(body) < int(headers["content-length"]):
            body += connection.recv(65536)
        assert TOO_LARGE_SENTENCE in body.decode()
        assert "Traceback" not in body.decode()

        # Then the worker stops listening: the connection is closed long before 150 MiB went in.
        sent, chunk = 0, b"x" * 65536
        with pytest.raises(OSError):  # sending until the server hangs up
            while sent < 150 * MiB:
                connection.sendall(chunk)
                sent += len(chunk)
        assert sent < 16 * MiB


def _chunks(size: int, step: int = 64 * 1024):
    sent = 0
    while sent < size:
        yield b"x" * min(step, size - sent)
        sent += step


def test_a_chunked_upload_with_a_file_part_is_refused_413(server: Server):
    boundary = "----shoplimits"

    def body():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="slug"\r\n\r\nceramic-mug\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="upload"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        yield from _chunks(2 * MiB)
        yield f"\r\n--{boundary}--\r\n".encode()

    answer = _send_tolerating_a_hangup(
        server,
        "/cart/add",
        body(),
        {"Content-Type": f"multipart/form-data; boundary={boundary}", "Transfer-Encoding": "chunked"},
    )
    assert answer[0] == 413
    assert TOO_LARGE_SENTENCE in answer[1]


def test_a_file_part_with_a_content_length_is_refused_413(client):
    answer = client.post(
        "/cart/add",
        data={"slug": "ceramic-mug", "upload": (io.BytesIO(b"x" * (REQUEST_MAX_BYTES + 1)), "big.bin")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 413
    assert TOO_LARGE_SENTENCE in answer.get_data(as_text=True)


def test_a_multipart_field_over_the_memory_limit_is_refused_413(client):
    answer = client.post(
        "/cart/add", data={"slug": "x" * (FORM_MEMORY_MAX_BYTES + 1)}, content_type="multipart/form-data"
    )
    assert answer.status_code == 413
    assert TOO_LARGE_SENTENCE in answer.get_data(as_text=True)


def test_a_urlencoded_form_over_the_request_limit_is_refused_413(client):
    answer = client.post("/cart/add", data={"slug": "x" * REQUEST_MAX_BYTES})
    assert answer.status_code == 413
    assert TOO_LARGE_SENTENCE in answer.get_data(as_text=True)


def test_a_form_of_too_many_parts_is_refused_413(client):
    answer = client.post(
        "/cart/add",
        data={f"field{n}": "1" for n in range(FORM_MAX_PARTS + 1)},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 413


def test_an_ordinary_form_is_still_read(client):
    answer = client.post("/cart/add", data={"slug": "ceramic-mug", "quantity": "1"})
    assert answer.status_code == 400  # read whole, and refused for its missing CSRF token
    assert "did not come from this shop" in answer.get_data(as_text=True)


def _signed_delivery(size: int) -> tuple[bytes, dict[str, str]]:
    """A user.updated delivery padded with JSON whitespace to exactly `size` bytes, signed."""
    payload = json.dumps(event("user.updated", clerk_user("user_padded", email="padded@example.com")))
    body = (payload + " " * (size - len(payload))).encode()
    assert len(body) == size
    return body, signed_headers(body)


def _send_tolerating_a_hangup(server: Server, path: str, chunks, headers: dict[str, str]) -> tuple[int, str]:
    """POST a chunked body from a thread while the answer is read: a server that answers 413 and
    hangs up half-way is doing its job, so a failed send is not an error, a missing answer is."""
    connection = server.connect()
    head = f"POST {path} HTTP/1.1\r\nHost: shop.test\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    def send() -> None:
        try:
            connection.sendall(head.encode() + b"\r\n")
            for chunk in chunks:
                connection.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            connection.sendall(b"0\r\n\r\n")
        except OSError:
            pass

    sender = threading.Thread(target=send)
    sender.start()
    try:
        status, answer_headers, body = read_head(connection)
        deadline = time.monotonic() + 10
        while len(body) < int(answer_headers.get("content-length", 0)) and time.monotonic() < deadline:
            body += connection.recv(65536)
        return status, body.decode()
    finally:
        # The server may already have hung up (that is what it should do): shutting down a socket
        # the peer closed raises ENOTCONN, which says nothing about the answer.
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        connection.close()
        sender.join()


def test_a_chunked_webhook_over_1_mib_is_413_not_an_invalid_signature(server: Server):
    body, headers = _signed_delivery(WEBHOOK_MAX_BYTES + 1)
    status, answer = _send_tolerating_a_hangup(
        server,
        "/api/webhooks/clerk",
        [body[i : i + 65536] for i in range(0, len(body), 65536)],
        {**headers, "Transfer-Encoding": "chunked"},
    )
    assert status == 413
    assert json.loads(answer) == {"error": "Payload too large"}


def test_a_chunked_webhook_of_exactly_1_mib_is_processed(server: Server):
    body, headers = _signed_delivery(WEBHOOK_MAX_BYTES)
    answer = requests.post(
        f"{server.url}/api/webhooks/clerk",
        data=(body[i : i + 65536] for i in range(0, len(body), 65536)),  # a generator: sent chunked
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "processed"}


@pytest.mark.parametrize("size", [WEBHOOK_MAX_BYTES + 1, 3 * MiB])
def test_a_webhook_announcing_over_1_mib_is_413(client, size):
    body, headers = _signed_delivery(size)
    answer = client.post("/api/webhooks/clerk", data=body, headers=headers)
    assert answer.status_code == 413
    assert answer.get_json() == {"error": "Payload too large"}


def test_the_webhook_cap_is_above_the_app_wide_limit():
    assert REQUEST_MAX_BYTES < WEBHOOK_MAX_BYTES  # a delivery between the two is accepted (above)
