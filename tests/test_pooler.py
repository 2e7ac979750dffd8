"""Through a transaction-mode pooler (Debian's PgBouncer, as Neon's `-pooler` host is one), with
DATABASE_URL_DIRECT for what needs a whole session: migrations and the sync's advisory lock."""

from __future__ import annotations

import threading

import pytest
import requests
from sqlalchemy.engine import make_url

from shop import create_app
from shop.config import ConfigError, load
from shop.extensions import db
from shop.sync import reconcile
from tests.conftest import DIRECT_URLS, settings
from tests.servers import PGBOUNCER, pgbouncer
from tests.support import live_server
from tests.sync.standin import SECRET_KEY

NEEDS_DIRECT = "DATABASE_URL goes through a transaction-mode pooler, where {} cannot hold a session"


def test_the_direct_url_is_read_and_normalised(tmp_path):
    env = {"DATABASE_URL": "postgres://u@pooler:6432/db", "DATABASE_URL_DIRECT": "postgres://u@db:5432/db"}
    loaded = load(env, production=False, instance_path=tmp_path)
    assert loaded["DATABASE_URL_DIRECT"] == "postgresql+psycopg://u@db:5432/db"
    assert load({}, production=False, instance_path=tmp_path)["DATABASE_URL_DIRECT"] is None


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"DATABASE_URL_DIRECT": "postgres://u@db/db"}, "DATABASE_URL_DIRECT is set without DATABASE_URL"),
        (
            {"DATABASE_URL": "postgres://u@p/db", "DATABASE_URL_DIRECT": "mysql://u@db/db"},
            "DATABASE_URL_DIRECT must start with postgres://",
        ),
    ],
)
def test_a_bad_direct_url_is_one_clear_sentence(tmp_path, env, problem):
    with pytest.raises(ConfigError) as raised:
        load(env, production=False, instance_path=tmp_path)
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


# -- with a real PgBouncer -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pooled(database_url) -> tuple[str, str]:
    """(pooled, direct) URLs of the suite's database: through a PgBouncer of this module's own."""
    if not PGBOUNCER.exists():
        pytest.skip("PGBOUNCER IS NOT INSTALLED (/usr/sbin/pgbouncer): the pooled-database tests did not run")
    direct = DIRECT_URLS.get(database_url, database_url)
    server = make_url(direct)
    if not server.host or server.host.startswith("/"):
        pytest.skip("PgBouncer is put in front of a TCP PostgreSQL: run with TEST_DATABASE_URL (as .ci/run does)")
    with pgbouncer((server.host, server.port or 5432), user=server.username or "postgres") as port:
        yield server.set(host="127.0.0.1", port=port).render_as_string(hide_password=False), direct


def test_pages_and_webhooks_work_through_pgbouncer_from_many_threads(pooled, deliver):
    pooled_url, direct = pooled
    app = create_app(settings(pooled_url, DATABASE_URL_DIRECT=direct))
    assert app.config["SHOP_DATABASE_POOLED"]
    failures: list[str] = []
    try:
        with live_server(app) as url:

            def browse() -> None:
                session = requests.Session()
                for _ in range(25):  # well past psycopg's 5 uses before it would prepare a statement
                    for path in ("/api/health", "/api/test-db", "/"):
                        answer = session.get(url + path, timeout=10)
                        if answer.status_code != 200:
                            failures.append(f"{path}: {answer.status_code} {answer.text[:200]}")

            threads = [threading.Thread(target=browse) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        with app.app_context():
            db.engine.dispose()
    assert failures == []


def test_without_a_direct_url_migrations_stop_with_one_sentence(pooled):
    pooled_url, _ = pooled
    app = create_app(settings(pooled_url + "?pgbouncer=true"))
    assert app.config["SHOP_DATABASE_POOLED"]
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code != 0
    assert NEEDS_DIRECT.format("migrations") in result.output
    assert "Traceback" not in result.output


def test_without_a_direct_url_the_sync_stops_with_one_sentence(pooled):
    pooled_url, _ = pooled
    app = create_app(settings(pooled_url + "?pgbouncer=true", CLERK_SECRET_KEY=SECRET_KEY))
    result = app.test_cli_runner().invoke(args=["sync-clerk", "sync"])
    assert result.exit_code == 1
    assert NEEDS_DIRECT.format("the sync's lock") in result.output
    assert "set DATABASE_URL_DIRECT" in result.output


def test_migrations_go_through_the_direct_url(pooled):
    pooled_url, direct = pooled
    app = create_app(settings(pooled_url, DATABASE_URL_DIRECT=direct))
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output


def test_one_sync_at_a_time_through_the_pooler(pooled):
    """The lock is taken on a direct connection: through PgBouncer it would sit on a server
    connection that the pool then hands to the next client, who would take it again."""
    pooled_url, direct = pooled
    first = create_app(settings(pooled_url, DATABASE_URL_DIRECT=direct))
    second = create_app(settings(pooled_url, DATABASE_URL_DIRECT=direct))
    with first.app_context(), reconcile.sync_lock(), second.app_context(), pytest.raises(reconcile.SyncAlreadyRunning):
        reconcile.sync_lock().__enter__()
    with second.app_context(), reconcile.sync_lock():
        pass  # released: the next one runs
    for app in (first, second):
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()
