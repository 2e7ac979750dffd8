"""Two syncs at once: the PostgreSQL advisory lock lets one run; the other says so and exits."""

import os
import subprocess
import sys
import threading

from shop import PROJECT_ROOT
from shop.clerk.api import clerk_api
from shop.sync import reconcile
from shop.sync.cli import EXIT_LOCKED
from tests.conftest import database_settings
from tests.sync.conftest import mirror_rows, user
from tests.sync.standin import SECRET_KEY


def flask_command(database_url: str, api_url: str, *args: str) -> subprocess.CompletedProcess:
    """`flask sync-clerk …` in its own process, configured through the environment as in production."""
    env = {
        **os.environ,
        "FLASK_APP": "wsgi",
        "FLASK_SKIP_DOTENV": "1",
        "FLASK_DEBUG": "0",
        **database_settings(database_url),  # and the direct URL, through the CI's pooler
        "SECRET_KEY": "test-secret-key",
        "CLERK_SECRET_KEY": SECRET_KEY,
        "CLERK_API_URL": api_url,
        "SHOP_DEV_AUTH": "0",
    }
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    return subprocess.run(
        [flask, "sync-clerk", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_second_sync_started_meanwhile_says_so_and_exits(clerk, cli, sync_app, database_url):
    clerk.put(*(user(i) for i in range(600)))
    hold = threading.Event()
    clerk.wait_before_page = hold  # the first sync stops inside its listing, holding the lock
    outcome = {}

    def first_sync():
        with sync_app.app_context(), reconcile.sync_lock():
            outcome["report"] = reconcile.sync(clerk_api())

    first = threading.Thread(target=first_sync)
    first.start()
    try:
        assert clerk.page_started.wait(timeout=30)

        second = flask_command(database_url, clerk.url, "sync")  # another process, as from cron

        assert second.returncode == EXIT_LOCKED, second.stderr
        assert "Another sync is running" in second.stderr
        assert "created=" not in second.stdout  # it did nothing
        in_process = cli("sync")  # and from this process, through the CLI runner
        assert in_process.exit_code == EXIT_LOCKED
        assert "Another sync is running" in in_process.output
    finally:
        hold.set()
        first.join(timeout=60)
    assert outcome["report"].ok
    assert outcome["report"].created == 600
    assert len(mirror_rows(sync_app)) == 600

    # The lock went with the first sync: the next one runs.
    clerk.wait_before_page = None
    after = flask_command(database_url, clerk.url, "sync")
    assert after.returncode == 0, after.stderr
    assert "created=0 updated=0 unchanged=600 tombstoned=0 failed=0" in after.stdout
