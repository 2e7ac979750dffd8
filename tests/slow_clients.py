"""Slow clients, as an attacker (or a phone on a bad network) holds connections open, and a load
balancer's health check beside them. Shared by tests/test_proxy.py and bench/slow_clients.py.

- A slow-header client sends a request head one header line at a time and never ends it.
- A slow-body client sends a whole head announcing a body, then trickles the body a byte at a time.
Each sends its next piece every `interval` seconds; a connection the server closes is opened again.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class SlowClients:
    host: str
    port: int
    slow_headers: int = 50
    slow_bodies: int = 50
    interval: float = 1.0
    opened: int = 0  # connections opened, first ones and reopened ones
    dropped: int = 0  # connections the server closed (a timeout doing its job)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _open(self, slow_body: bool) -> socket.socket | None:
        try:
            connection = socket.create_connection((self.host, self.port), timeout=5)
        except OSError:
            return None
        connection.setblocking(False)
        self.opened += 1
        if slow_body:
            head = (
                "POST /cart/add HTTP/1.1\r\nHost: shop.test\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nslug="
            )
        else:
            head = "GET / HTTP/1.1\r\nHost: shop.test\r\n"
        try:
            connection.send(head.encode())
        except OSError:
            connection.close()
            return None
        return connection

    def _run(self) -> None:
        kinds = [False] * self.slow_headers + [True] * self.slow_bodies
        connections: list[socket.socket | None] = [self._open(kind) for kind in kinds]
        step = 0
        while not self._stop.wait(self.interval):
            step += 1
            for index, kind in enumerate(kinds):
                connection = connections[index]
                piece = b"x" if kind else f"X-Slow-{step}: {step}\r\n".encode()
                try:
                    if connection is None:
                        raise OSError
                    if connection.recv(1, socket.MSG_PEEK) == b"":  # the server hung up
                        raise OSError
                except BlockingIOError:
                    pass  # nothing to read: still open
                except OSError:
                    if connection is not None:
                        self.dropped += 1
                        connection.close()
                    connections[index] = self._open(kind)
                    continue
                try:
                    connection.send(piece)
                except BlockingIOError:
                    pass
                except OSError:
                    self.dropped += 1
                    connection.close()
                    connections[index] = self._open(kind)
        for connection in connections:
            if connection is not None:
                connection.close()

    def __enter__(self) -> SlowClients:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while self.opened < self.slow_headers + self.slow_bodies and time.monotonic() < deadline:
            time.sleep(0.01)  # every connection opened (or tried) before the measure starts
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@dataclass
class HealthChecks:
    """GET /api/health on a fresh connection, one after another, as a load balancer's check does."""

    latencies: list[float] = field(default_factory=list)  # seconds, or None-like inf for a failure
    failures: int = 0

    def run(self, host: str, port: int, seconds: float, *, timeout: float = 5.0, pause: float = 0.05) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
                connection.request("GET", "/api/health")
                status = connection.getresponse().status
                connection.close()
            except OSError:
                status = 0
            elapsed = time.monotonic() - started
            if status != 200:
                self.failures += 1
                elapsed = float("inf")
            self.latencies.append(elapsed)
            time.sleep(pause)

    def within(self, seconds: float) -> float:
        """The share of checks answered 200 within `seconds`."""
        return sum(1 for latency in self.latencies if latency <= seconds) / max(len(self.latencies), 1)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("inf")
