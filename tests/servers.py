"""Real servers for the tests of the production topology: gunicorn as `make serve` starts it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.harness import free_port, start_gunicorn
from tests.support import WEBHOOK_SECRET


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)


@contextmanager
def gunicorn(database_url: str, log: Path, *args: str, **settings: str) -> Iterator[Server]:
    """`gunicorn -c gunicorn.conf.py wsgi:app` in production mode on a free port (extra flags in `args`)."""
    port = free_port()
    environment = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key",
        "CLERK_WEBHOOK_SECRET": WEBHOOK_SECRET,
        **settings,
    }
    process = start_gunicorn(environment, port, log, args)
    try:
        yield Server("127.0.0.1", port, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


def read_head(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and whatever body bytes arrived with them, read from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, rest
