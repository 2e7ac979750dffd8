"""Two instances of the shop on one PostgreSQL (bench/load.py --instances 2, made fast).

Each instance is its own app object with its own connection pool, served on its own port: the
only thing they share is the database, as two machines behind a load balancer would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from shop import PROJECT_ROOT
from shop.sync.cli import EXIT_LOCKED
from tests.conftest import database_settings
from tests.scale.support import Clerk, deliver_to_both, drain, webhook_problems
from tests.support import libpq, live_server
from tests.sync.conftest import mirror_rows, user
from tests.sync.standin import SECRET_KEY, StandInClerk, serve

pytestmark = pytest.mark.slow  # seconds each: `pytest -m "not slow"` skips them while iterating


def test_deliveries_sent_to_both_instances_at_once_have_one_effect_each(make_app, database_url):
    first, second = make_app(), make_app()
    clerk = Clerk(users=100, prefix="user_cross", duplicate_share=0.1)
    messages = [clerk.change() for _ in range(150)]  # creations, updates and deletions of 100 users
    with live_server(first) as a, live_server(second) as b, ThreadPoolExecutor(8) as pool:
        # Eight messages at a time, each to both instances at the same moment: a user's events
        # also overtake each other, as Svix does not keep order.
        answers = list(pool.map(lambda message: deliver_to_both(clerk, message, [a, b]), messages))
        drain(clerk, [a, b], limit=30)  # the duplicates Svix sends later, to either instance

    assert all(statuses == [200, 200] for statuses in answers)
    assert [m.processed for m in messages] == [1] * len(messages)  # one "processed", one "duplicate"
    assert clerk.duplicates >= len(messages)
    with psycopg.connect(libpq(database_url)) as conn:
        problems, counts = webhook_problems(conn, clerk)
    assert problems == []
    assert counts["events"] == counts["events_processed"] == len(messages)
    assert counts["duplicate_effects"] == 0
    assert counts["users_checked"] == 100 and counts["users_wrong"] == 0


def test_two_syncs_started_on_two_instances_at_once_one_runs(make_app, database_url):
    app = make_app()
    standin = StandInClerk()
    standin.put(*(user(i) for i in range(120)))
    # The listing waits until one of the two has exited: the sync holding the lock is still in
    # it when the other tries, however their start-ups fall on a busy machine.
    one_exited = threading.Event()
    standin.before_page = lambda offset: one_exited.wait(timeout=60) if offset == 0 else None
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "CLERK_"))},
        "FLASK_APP": "wsgi",
        "FLASK_SKIP_DOTENV": "1",
        "FLASK_DEBUG": "0",
        **database_settings(database_url),  # and the direct URL, through the CI's pooler
        "SECRET_KEY": "test-secret-key",
        "SHOP_DEV_AUTH": "0",
        "CLERK_SECRET_KEY": SECRET_KEY,
    }
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    with serve(standin):
        env["CLERK_API_URL"] = standin.url
        runs = [
            subprocess.Popen(
                [flask, "sync-clerk", "sync"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True,
            )
            for _ in range(2)
        ]  # fmt: skip
        outputs: list[tuple[str, str]] = [("", ""), ("", "")]

        def collect(index: int) -> None:
            outputs[index] = runs[index].communicate(timeout=120)
            one_exited.set()

        collectors = [threading.Thread(target=collect, args=(index,)) for index in range(2)]
        for thread in collectors:
            thread.start()
        for thread in collectors:
            thread.join()

    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, EXIT_LOCKED], outputs
    ran, refused = (outputs[0], outputs[1]) if codes[0] == 0 else (outputs[1], outputs[0])
    assert "created=120 updated=0 unchanged=0 tombstoned=0 failed=0" in ran[0]
    assert "Another sync is running" in refused[1]
    assert "created=" not in refused[0]
    assert len(mirror_rows(app)) == 120
