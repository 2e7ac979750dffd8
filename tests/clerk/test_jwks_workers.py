"""JWKS mode under the real gunicorn (gunicorn.conf.py, two workers, production settings): each worker
fetches Clerk's key set as it starts, and workers started during a JWKS outage sign shoppers in within
seconds of Clerk's recovery, not after the 30-second cooldown."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
from werkzeug import Response

from tests.conftest import TOKENS
from tests.servers import Server, gunicorn
from tests.support import TEST_PUBLISHABLE_KEY, wait_for

pytestmark = pytest.mark.slow

SECRET = "sk_test_jwks_workers"
ACCESS_LOG = ("--workers", "2", "--access-logfile", "-", "--access-logformat", "%(p)s %(r)s %(s)s")
SIGNED_IN = re.compile(r"^<(\d+)> GET /api/me HTTP/1\.1 200$", re.MULTILINE)
JWKS_FAILED = re.compile(r"Clerk JWKS fetch from \S+ failed")
WORKER_BOOTED = re.compile(r"Booting worker with pid: (\d+)")


class JWKS:
    """Clerk's `GET /v1/jwks` (Bearer secret key), up or down; counts what it answered."""

    def __init__(self, server, *, up: bool):
        self.up = up
        self.served = 0
        self.refused = 0
        self._lock = threading.Lock()
        server.expect_request("/v1/jwks").respond_with_handler(self.handle)
        self.api_url = server.url_for("/v1")

    def handle(self, request):
        if request.headers.get("Authorization") != f"Bearer {SECRET}":
            return Response(json.dumps({"errors": [{"code": "clerk_key_invalid"}]}), status=401)
        with self._lock:
            if not self.up:
                self.refused += 1
                return Response("upstream down", status=503)
            self.served += 1
        return Response(json.dumps({"keys": [TOKENS.jwk()]}), content_type="application/json")


def jwks_mode(jwks: JWKS) -> dict[str, str]:
    """No CLERK_JWT_KEY: keys come from the Backend API's JWKS."""
    return {"CLERK_PUBLISHABLE_KEY": TEST_PUBLISHABLE_KEY, "CLERK_SECRET_KEY": SECRET, "CLERK_API_URL": jwks.api_url}


def workers_that_signed_in(log: Path) -> set[str]:
    return set(SIGNED_IN.findall(log.read_text()))


def sign_in_until_both_workers_answered(server: Server, log: Path, token: str, timeout: float) -> None:
    def both() -> bool:
        # A new connection each time (no keep-alive), so either worker may take it.
        requests.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        return len(workers_that_signed_in(log)) == 2

    wait_for(both, timeout=timeout, what=lambda: f"both workers to sign the shopper in; log:\n{log.read_text()}")


def sign_in_at(server: Server, log: Path, token: str, worker: psutil.Process, others: list[psutil.Process]) -> None:
    """Sign the shopper in at `worker`, the `others` stopped (SIGSTOP) meanwhile: only `worker` can take
    the new connection, however slowly it runs."""
    try:
        for other in others:
            other.suspend()
        wait_for(lambda: all(o.status() == psutil.STATUS_STOPPED for o in others), what="the other workers to stop")
        answer = requests.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    finally:
        for other in others:
            other.resume()
    assert answer.status_code == 200, answer.text
    # The access line is written just after the answer is sent.
    wait_for(
        lambda: str(worker.pid) in workers_that_signed_in(log),
        what=lambda: f"worker {worker.pid} to log the sign-in; log:\n{log.read_text()}",
    )


def sign_in_at_each_worker(server: Server, log: Path, token: str) -> None:
    """Sign the shopper in once at each worker, in turn. Which worker accepts a new connection is up to
    the kernel (under load, one can win a dozen times in a row), so the test picks it instead."""
    workers = [psutil.Process(int(pid)) for pid in WORKER_BOOTED.findall(log.read_text())]
    assert len(workers) == 2, log.read_text()
    for worker in workers:
        sign_in_at(server, log, token, worker, [other for other in workers if other.pid != worker.pid])


def test_each_worker_fetches_the_keys_as_it_starts(make_user, database_url, httpserver, tmp_path):
    make_user("user_early")
    jwks = JWKS(httpserver, up=True)
    log = tmp_path / "gunicorn.log"
    with gunicorn(database_url, log, *ACCESS_LOG, **jwks_mode(jwks)) as server:
        # No request has needed a key yet (the readiness probe, /api/health, reads no token). The
        # second worker may still be booting under load: the deadline only bounds a hung test.
        wait_for(lambda: jwks.served == 2, timeout=30, what=lambda: f"one fetch per worker (got {jwks.served})")
        sign_in_at_each_worker(server, log, TOKENS.mint("user_early"))
        assert (jwks.served, jwks.refused) == (2, 0)  # the shoppers waited for no fetch


def test_workers_started_in_an_outage_sign_shoppers_in_seconds_after_it(make_user, database_url, httpserver, tmp_path):
    make_user("user_back")
    jwks = JWKS(httpserver, up=False)
    log = tmp_path / "gunicorn.log"
    with gunicorn(database_url, log, *ACCESS_LOG, **jwks_mode(jwks)) as server:
        wait_for(lambda: jwks.refused >= 2, what="each worker's first fetch")
        # One line per worker says so, and the worker boots all the same.
        wait_for(lambda: len(JWKS_FAILED.findall(log.read_text())) == 2, what="one log line per worker")
        token = TOKENS.mint("user_back")
        refused = requests.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert refused.status_code == 401  # no key: signed out, never a 500
        jwks.up = True
        recovered = time.monotonic()
        sign_in_until_both_workers_answered(server, log, token, timeout=15)
        # A worker retries 1 s after its first failure, 2 s after a second: not the 30-second cooldown.
        assert time.monotonic() - recovered < 4.0
        assert jwks.served == 2
