"""Real servers for the tests of the production topology: gunicorn as `make serve` starts it."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.harness import free_port, start_gunicorn
from tests.conftest import database_settings
from tests.support import WEBHOOK_SECRET, wait_for


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
def gunicorn(database_url: str, log: Path, *args: str, port: int | None = None, **settings: str) -> Iterator[Server]:
    """`gunicorn -c gunicorn.conf.py wsgi:app` in production mode on `port` or a free one (extra flags in `args`)."""
    port = port or free_port()
    environment = {
        **database_settings(database_url),  # and the direct URL, through the CI's pooler
        "SECRET_KEY": "test-secret-key",
        "CLERK_WEBHOOK_SECRET": WEBHOOK_SECRET,
        **settings,
    }
    process = start_gunicorn(environment, port, log, args)
    try:
        yield Server("127.0.0.1", port, log)
    finally:
        # SIGQUIT is gunicorn's quick shutdown: a graceful one (SIGTERM) waits seconds for the keep-alive
        # connections a browser holds. The tests of graceful shutdown send SIGTERM themselves.
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            # A gthread worker can miss the quit (seen once under load: one worker never logged "Worker
            # exiting", and gunicorn waited out its 25 s graceful_timeout before SIGKILL); the test is over.
            for worker in psutil.Process(process.pid).children(recursive=True):
                worker.kill()
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


PGBOUNCER = Path("/usr/sbin/pgbouncer")  # Debian's pgbouncer package


@contextmanager
def pgbouncer(server: tuple[str, int] = ("127.0.0.1", 5432), *, user: str = "postgres") -> Iterator[int]:
    """Debian's PgBouncer in transaction mode in front of `server`, its files in a temporary directory
    of its own; yields its port. PgBouncer refuses to run as root: started by root, it switches to
    `nobody` (as .ci/run does), who must be able to reach that directory (so not under pytest's 0700 tree)."""
    import os
    import subprocess
    import tempfile

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as name:
        directory = Path(name)
        (directory / "userlist.txt").write_text(f'"{user}" ""\n')  # auth_type = trust: the name must be listed
        (directory / "pgbouncer.ini").write_text(
            f"[databases]\n* = host={server[0]} port={server[1]}\n\n[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {directory}/userlist.txt\npool_mode = transaction\n"
            "log_connections = 0\nlog_disconnections = 0\n"
            f"default_pool_size = 10\nlogfile = {directory}/pgbouncer.log\npidfile = {directory}/pgbouncer.pid\n"
        )
        as_user = []
        if os.geteuid() == 0:
            as_user = ["-u", "nobody"]
            directory.chmod(0o777)
        process = subprocess.Popen([str(PGBOUNCER), "-q", *as_user, str(directory / "pgbouncer.ini")])
        log = directory / "pgbouncer.log"

        def accepting() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                assert process.poll() is None, f"pgbouncer stopped: {log.read_text() if log.exists() else ''}"
                return False

        try:
            wait_for(
                accepting,
                timeout=20,
                what=lambda: f"pgbouncer to start: {log.read_text() if log.exists() else ''}",
                interval=0.05,
            )
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)
