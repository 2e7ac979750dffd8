"""Faults under load, made fast (bench/load.py --fault db-restart | worker-kill runs them for longer).

- PostgreSQL stops and starts again while Svix delivers and a shopper checks out: deliveries
  during the outage get 5xx, Svix's retries bring every one in, pages answer 503 and then
  recover, and the order placed again with the same idempotency key is there once.
- A gunicorn worker is killed with SIGKILL in the middle of the traffic: the master starts
  another, and Svix's retries bring in whatever the dead worker dropped.

Each phase lasts until what it is for has been seen (deliveries answered, pages served, a worker
replaced), polled with tests.support.wait_for: no fixed sleep decides what happens when.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import flask_migrate
import psutil
import psycopg
import pytest
import requests

from bench import harness
from bench.harness import free_port
from shop import create_app, mirror
from shop.clerk.users import parse_user
from shop.extensions import db
from shop.store.seed import seed
from tests.conftest import database_settings, settings
from tests.scale.support import (
    Clerk,
    PlacedOrder,
    checkout_form,
    csrf_token,
    drain,
    order_problems,
    send_while,
    webhook_problems,
)
from tests.support import WEBHOOK_SECRET, clerk_user, libpq, live_server, wait_for

pytestmark = pytest.mark.slow  # seconds each: `pytest -m "not slow"` skips them while iterating


def test_svix_retries_bring_every_delivery_in_through_a_database_restart(stoppable_postgres, tokens):
    app = create_app(settings(stoppable_postgres.url))
    shopper = clerk_user("user_shopper_outage", email="shopper@example.com")
    with app.app_context():
        flask_migrate.upgrade()
        seed()
        mirror.apply_snapshot(db.session.connection(), parse_user(shopper))
        db.session.commit()
    clerk = Clerk(users=2000, prefix="user_outage")
    browser = requests.Session()
    browser.cookies.set("__session", tokens.mint(shopper["id"], exp=int(time.time()) + 600))
    pages: list[tuple[float, int]] = []
    running = threading.Event()
    running.set()

    def look_at_the_catalogue(url: str) -> None:
        while running.is_set():
            asked = time.monotonic()  # when the request started: its answer depends on the database then
            pages.append((asked, requests.get(url + "/", timeout=10).status_code))
            time.sleep(0.05)

    with live_server(app) as url:
        threads = [
            threading.Thread(target=send_while, args=(clerk, [url], running), kwargs={"rate": 150}),
            threading.Thread(target=look_at_the_catalogue, args=(url,)),
        ]
        for thread in threads:
            thread.start()
        try:
            # The shopper fills the cart and opens the checkout while the database is up.
            product = browser.get(f"{url}/products/ceramic-mug", timeout=10)
            added = browser.post(
                f"{url}/cart/add",
                data={"csrf_token": csrf_token(product.text), "slug": "ceramic-mug", "quantity": "2"},
                allow_redirects=False,
                timeout=10,
            )
            assert added.status_code == 302
            form = checkout_form(browser.get(f"{url}/checkout", timeout=10).text)
            assert form is not None and form.lines == (("Ceramic mug", 2),)
            # Traffic flows while the database is up: deliveries accepted, the catalogue served.
            wait_for(
                lambda: clerk.statuses[200] >= 20 and any(status == 200 for _, status in pages),
                what=lambda: f"deliveries and pages served before the outage ({clerk.statuses}, {len(pages)} pages)",
            )

            stoppable_postgres.stop()
            stopped = time.monotonic()
            # The outage is seen on both paths: deliveries refused (Svix will retry them), pages asked during it.
            wait_for(
                lambda: clerk.statuses[500] >= 10 and sum(at > stopped + 0.1 for at, _ in pages) >= 3,
                what=lambda: f"deliveries and pages answered during the outage ({clerk.statuses})",
            )
            refused = browser.post(f"{url}/checkout", data=form.data(), allow_redirects=False, timeout=10)
            started = time.monotonic()
            stoppable_postgres.start()
            up = time.monotonic()
            accepted_when_up = clerk.statuses[200]
            # Back: deliveries accepted again, and pages asked well after the restart answered.
            wait_for(
                lambda: clerk.statuses[200] >= accepted_when_up + 20 and any(at > up + 0.5 for at, _ in pages),
                what=lambda: f"deliveries and pages served after the restart ({clerk.statuses})",
            )
        finally:
            running.clear()
            for thread in threads:
                thread.join()
        took = drain(clerk, [url], limit=40)  # Clerk changes nothing more; Svix retries what failed
        # The shopper presses "Place order" again: same form, same idempotency key.
        placed = browser.post(f"{url}/checkout", data=form.data(), allow_redirects=False, timeout=10)

    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert placed.status_code == 303 and "/dev-stripe/checkout/" in placed.headers["Location"]  # on to payment
    with psycopg.connect(stoppable_postgres.libpq) as conn:
        order_id = conn.execute("SELECT id FROM orders WHERE idempotency_key = %s", (form.idempotency_key,)).fetchone()[
            0
        ]

    counts = clerk.counts()
    assert counts["lost"] == 0, f"Svix gave up or ran out of time ({took:.1f} s of retries)"
    assert clerk.statuses[500] > 0  # deliveries during the outage were refused, so Svix retried them
    assert set(clerk.statuses) <= {200, 500}
    during = [status for at, status in pages if stopped + 0.1 < at < started]
    assert during and set(during) == {503}
    assert [status for at, status in pages if at > up + 0.5] and all(
        status == 200 for at, status in pages if at > up + 0.5
    )  # recovered by itself (pre-ping replaced the dead connections)
    with psycopg.connect(stoppable_postgres.libpq) as conn:
        hook_issues, hook_counts = webhook_problems(conn, clerk)
        order_issues, order_counts = order_problems(
            conn, [PlacedOrder(order_id, shopper["id"], form.idempotency_key, form.expected_total, form.lines)],
            [shopper["id"]],
        )  # fmt: skip
    assert hook_issues == [] and hook_counts["duplicate_effects"] == 0
    assert hook_counts["events_processed"] == counts["messages"]
    assert order_issues == [] and order_counts["in_database"] == 1
    with app.app_context():
        db.engine.dispose()


def start_gunicorn(database_url: str, port: int, log: Path) -> subprocess.Popen:
    """gunicorn with the committed gunicorn.conf.py, two workers, in production mode."""
    settings = {
        **database_settings(database_url),  # and the direct URL, through the CI's pooler
        "SECRET_KEY": "test-secret-key",
        "CLERK_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    return harness.start_gunicorn(settings, port, log, ["--workers", "2"])


def running_worker(master: psutil.Process, seconds: float) -> tuple[int, bool]:
    """A worker caught running (in the middle of a request), or any worker after `seconds`."""

    def running() -> int | None:
        for child in master.children():
            try:
                if child.status() == psutil.STATUS_RUNNING:
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        return None

    try:
        return wait_for(running, timeout=seconds, what="a worker in the middle of a request", interval=0.001), True
    except AssertionError:  # none caught running: any worker will do
        return master.children()[0].pid, False


def replaced(master: psutil.Process, victim: int) -> list[int] | None:
    """The master's two workers once the killed one is replaced, else None."""
    workers = [child.pid for child in master.children()]
    return workers if victim not in workers and len(workers) == 2 else None


def test_a_worker_killed_mid_request_loses_nothing(make_app, database_url, tmp_path):
    make_app()  # the tables are emptied after the test
    clerk = Clerk(users=2000, prefix="user_kill")
    server = start_gunicorn(database_url, port := free_port(), tmp_path / "gunicorn.log")
    url = f"http://127.0.0.1:{port}"
    running = threading.Event()
    running.set()
    senders = [
        threading.Thread(target=send_while, args=(clerk, [url], running), kwargs={"rate": 150}) for _ in range(4)
    ]
    try:
        master = psutil.Process(server.pid)
        for thread in senders:
            thread.start()
        # Traffic flows through both workers before one is killed.
        wait_for(lambda: clerk.statuses[200] >= 100, what=lambda: f"deliveries accepted ({clerk.statuses})")
        victim, caught_running = running_worker(master, seconds=3)
        os.kill(victim, signal.SIGKILL)
        # Traffic goes on until the master has started another worker, and for a hundred deliveries more.
        wait_for(lambda: replaced(master, victim), timeout=30, what="the master to replace the killed worker")
        accepted_when_replaced = clerk.statuses[200]
        wait_for(
            lambda: clerk.statuses[200] >= accepted_when_replaced + 100,
            what=lambda: f"deliveries accepted after the worker was replaced ({clerk.statuses})",
        )
        running.clear()
        for thread in senders:
            thread.join()
        took = drain(clerk, [url], limit=40)
        workers = [c.pid for c in master.children()]
    finally:
        running.clear()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    assert victim not in workers and len(workers) == 2  # the master started a new worker
    counts = clerk.counts()
    assert counts["lost"] == 0, f"Svix gave up or ran out of time ({took:.1f} s of retries)"
    assert counts["accepted"] == counts["messages"] > 100
    # A request in flight on the dead worker gets no answer; nothing else fails.
    assert set(clerk.statuses) <= {200, 0}
    if caught_running:
        print(f"killed worker {victim} while it ran; deliveries without an answer: {clerk.statuses[0]}")
    with psycopg.connect(libpq(database_url)) as conn:
        problems, hook_counts = webhook_problems(conn, clerk)
    assert problems == [] and hook_counts["duplicate_effects"] == 0
