"""`/metrics` under a real gunicorn with two workers (gunicorn.conf.py, production mode).

Whichever worker answers a scrape, and after a worker is killed and replaced, the figures are the
same: counters go through prometheus_client's multiprocess files, the mirror's state through
PostgreSQL. The access log names the worker that answered each request (`%(p)s`), so the test
scrapes until both workers have answered.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import psycopg
import requests

from bench import harness
from bench.harness import free_port
from shop import PROJECT_ROOT
from tests.conftest import TOKENS, database_settings
from tests.metrics.support import AUTH, TOKEN, Samples, requests_counted, samples, value
from tests.support import TEST_PUBLISHABLE_KEY, WEBHOOK_SECRET, clerk_user, event, libpq, signed_headers, wait_for
from tests.sync.conftest import user
from tests.sync.standin import SECRET_KEY, StandInClerk, serve

METRICS_PARENT = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())  # noqa: S108
ANSWERED = re.compile(r"^<(\d+)> GET /metrics ", re.MULTILINE)


def start_gunicorn(database_url: str, clerk_url: str, port: int, log: Path, **extra_env: str) -> subprocess.Popen:
    settings = {
        **database_settings(database_url),  # and the direct URL, through the CI's pooler
        "SECRET_KEY": "test-secret-key",
        "METRICS_TOKEN": TOKEN,
        "CLERK_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CLERK_PUBLISHABLE_KEY": TEST_PUBLISHABLE_KEY,
        "CLERK_JWT_KEY": TOKENS.public_pem,
        "CLERK_SECRET_KEY": SECRET_KEY,
        "CLERK_API_URL": clerk_url,
        **extra_env,
    }
    access_log = ("--access-logfile", "-", "--access-logformat", "%(p)s %(r)s %(s)s")  # which worker answered
    return harness.start_gunicorn(settings, port, log, ["--workers", "2", *access_log])


def comparable(found: Samples) -> Samples:
    """What must be equal between scrapes: all but the scrapes' own requests and the clock-driven age."""
    return {
        key: number
        for key, number in found.items()
        if ("route", "/metrics") not in key[1] and key[0] != "shop_webhook_seconds_since_last_processed"
    }


def scrape(url: str) -> Samples:
    # A new connection each time (no keep-alive session), so either worker may take it.
    response = requests.get(f"{url}/metrics", headers=AUTH, timeout=10)
    assert response.status_code == 200
    return comparable(samples(response.text))


def scrape_until_both_workers_answered(url: str, log: Path, workers: set[int]) -> list[Samples]:
    scrapes, deadline = [], time.monotonic() + 60
    while len(scrapes) < 4 or not workers <= set(map(int, ANSWERED.findall(log.read_text()))):
        assert time.monotonic() < deadline, "the same worker answered every scrape for a minute"
        scrapes.append(scrape(url))
    return scrapes


def test_every_worker_answers_with_the_same_figures(make_app, database_url, tmp_path):
    make_app()  # the tables are emptied after the test
    log = tmp_path / "gunicorn.log"
    with serve(StandInClerk()) as clerk:
        server = start_gunicorn(database_url, clerk.url, port := free_port(), log)
        url = f"http://127.0.0.1:{port}"
        master = psutil.Process(server.pid)
        metrics_dir = METRICS_PARENT / f"shop-metrics-{server.pid}"  # gunicorn.conf.py's default
        try:
            with psycopg.connect(libpq(database_url), autocommit=True) as conn:
                conn.execute("ALTER TABLE users ADD CONSTRAINT test_fault CHECK (first_name <> 'Blocked') NOT VALID")

            def deliver(svix_id: str, kind: str, data: dict) -> requests.Response:
                body = json.dumps(event(kind, data))
                return requests.post(
                    f"{url}/api/webhooks/clerk", data=body, headers=signed_headers(body, svix_id=svix_id), timeout=10
                )

            assert deliver("msg_a", "user.created", user(1)).json() == {"status": "processed"}
            assert deliver("msg_a", "user.created", user(1)).json() == {"status": "duplicate"}
            assert deliver("msg_b", "user.created", user(2)).json() == {"status": "processed"}
            assert deliver("msg_c", "user.updated", user(1, first_name="Blocked")).status_code == 500
            clerk.put(clerk_user("user_new", email="new@example.com"), user(1), user(3))
            me = requests.get(
                f"{url}/api/me", headers={"Authorization": f"Bearer {TOKENS.mint('user_new')}"}, timeout=10
            )
            assert me.status_code == 200  # provisioned from the stand-in's Backend API
            sync_app = make_app(CLERK_SECRET_KEY=SECRET_KEY, CLERK_API_URL=clerk.url)
            assert sync_app.test_cli_runner().invoke(args=["sync-clerk", "sync"]).exit_code == 0

            workers = {child.pid for child in master.children()}
            assert len(workers) == 2
            files = sorted(path.name for path in metrics_dir.glob("*.db"))
            scrapes = scrape_until_both_workers_answered(url, log, workers)
            first = scrapes[0]
            assert all(found == first for found in scrapes), "two scrapes differed"

            clerk_created = {"source": "clerk", "type": "user.created"}
            assert value(first, "shop_webhook_deliveries_total", **clerk_created, outcome="processed") == 2
            assert value(first, "shop_webhook_deliveries_total", **clerk_created, outcome="duplicate") == 1
            assert (
                value(first, "shop_webhook_deliveries_total", source="clerk", type="user.updated", outcome="failed")
                == 1
            )
            assert value(first, "shop_first_sign_in_provisionings_total") == 1
            assert requests_counted(first, "POST", "/api/webhooks/clerk", "200") == 3
            assert requests_counted(first, "POST", "/api/webhooks/clerk", "500") == 1
            assert requests_counted(first, "GET", "/api/me", "200") == 1
            assert value(first, "shop_webhook_failed_events", source="clerk") == 1
            assert value(first, "shop_webhook_last_processed_timestamp_seconds", source="clerk") > 0
            assert value(first, "shop_sync_last_success") == 1
            assert value(first, "shop_sync_last_drift_users", kind="missing") == 1
            assert value(first, "shop_sync_last_drift_users", kind="gone") == 1

            # A worker dies: its replacement starts from nothing, the sums keep what the dead one counted.
            victim = next(iter(workers))
            os.kill(victim, signal.SIGKILL)

            def replaced() -> set[int] | None:
                now = {child.pid for child in master.children()}
                return now if victim not in now and len(now) >= 2 else None

            now = wait_for(replaced, timeout=30, what="gunicorn to replace the worker", interval=0.05)
            assert all(found == first for found in scrape_until_both_workers_answered(url, log, now))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            with psycopg.connect(libpq(database_url), autocommit=True) as conn:
                conn.execute("ALTER TABLE users DROP CONSTRAINT IF EXISTS test_fault")
    assert files, "no multiprocess files: the workers did not use PROMETHEUS_MULTIPROC_DIR"
    assert not metrics_dir.exists()  # the default directory is removed at exit


def test_a_chosen_directory_is_emptied_at_start_and_kept(make_app, database_url, tmp_path):
    make_app()
    chosen = tmp_path / "metrics"
    chosen.mkdir()
    # A previous run's worker counted five provisionings into this directory.
    stale = "from shop import metrics\nfor _ in range(5): metrics.record_provisioning()"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(chosen)}
    subprocess.run([str(PROJECT_ROOT / ".venv" / "bin" / "python"), "-c", stale], cwd=PROJECT_ROOT, env=env, check=True)
    assert list(chosen.glob("counter_*.db"))
    server = start_gunicorn(
        database_url,
        "http://127.0.0.1:9/v1",
        port := free_port(),
        tmp_path / "log",
        PROMETHEUS_MULTIPROC_DIR=str(chosen),
    )
    try:
        found = scrape(f"http://127.0.0.1:{port}")
        assert value(found, "shop_first_sign_in_provisionings_total") == 0
        assert requests_counted(found, "GET", "/api/health", "200") >= 1  # this run's own requests are there
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert chosen.is_dir()  # the operator's directory is theirs to remove
