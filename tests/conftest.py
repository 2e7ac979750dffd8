"""Fixtures: a real PostgreSQL (embedded, or TEST_DATABASE_URL), the app, its client and CLI runner."""

from __future__ import annotations

import gc
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import flask_migrate
import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from shop import PROJECT_ROOT, create_app, mirror
from shop.clerk.users import UserSnapshot
from shop.config import normalize_database_url
from shop.extensions import db
from shop.models import Role, User
from tests.support import TEST_PUBLISHABLE_KEY, WEBHOOK_SECRET, TokenMinter, libpq, live_server, signed_headers

# One database per run, so that several runs (two terminals, helpers) never disturb each other;
# under pytest-xdist (`make test` runs two workers), one per worker.
TEST_DATABASE = f"shop_test_{os.getpid()}"
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


# TEST_DATABASE_URL may go through a transaction-mode pooler (.ci/run's PgBouncer); then
# TEST_DATABASE_URL_DIRECT reaches the same database directly, and every app made on the suite's
# database gets it as DATABASE_URL_DIRECT (migrations and the sync's lock need a session).
DIRECT_URLS: dict[str, str] = {}


def _fresh_database_url() -> tuple[str, Callable[[], None]]:
    """A URL to an empty database that the suite owns, and how to drop it afterwards."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        url = normalize_database_url(url)  # postgres:// and postgresql:// too, always through psycopg 3
        direct = normalize_database_url(os.environ.get("TEST_DATABASE_URL_DIRECT") or url)
        if XDIST_WORKER:
            return _worker_database_url(url, direct)
        if direct != url:
            DIRECT_URLS[url] = direct
        # The caller created this database for the suite (.ci/run does); start from an empty schema.
        with psycopg.connect(libpq(direct)) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        return url, lambda: None
    from devtools import embedded_postgres

    server_url = embedded_postgres.start(PROJECT_ROOT / "instance" / "pgdata")
    return _new_database(server_url, TEST_DATABASE)


def _worker_database_url(url: str, direct: str) -> tuple[str, Callable[[], None]]:
    """Under pytest-xdist, each worker gets a database of its own beside TEST_DATABASE_URL's, on the
    same server (and through the same pooler, which must route any database name, as .ci/run's does)."""
    name = f"{make_url(direct).database}_{XDIST_WORKER}"
    direct_url, drop = _new_database(direct, name)
    pooled_url = make_url(url).set(database=name).render_as_string(False)
    if pooled_url != direct_url:
        DIRECT_URLS[pooled_url] = direct_url
    return pooled_url, drop


def _new_database(server_url: str, name: str) -> tuple[str, Callable[[], None]]:
    """Database `name`, created empty on `server_url`'s server; its URL, and how to drop it."""

    def drop() -> None:
        with psycopg.connect(libpq(server_url), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    drop()
    with psycopg.connect(libpq(server_url), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        # A commit need not wait for the disk: the suite's data is thrown away, and its thousands of
        # commits each waited for an fsync.
        conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
    return make_url(server_url).set(database=name).render_as_string(False), drop


def pytest_collection_finish(session: pytest.Session) -> None:
    """Python's garbage collector, tuned for a run of short tests that each build an app.

    Everything imported by now (Flask, SQLAlchemy, the shop's modules, the collected tests) stays to
    the end: frozen, the collector stops walking it again and again. And it runs less often: a test
    allocates a great deal that plain reference counting frees. Collections took 11 s of a 68-s run
    of tests/store and tests/payments, and take 3 s now. Nothing a test checks depends on when cyclic
    garbage is collected: every app a test makes closes its connections when the test ends
    (make_app), not when it is collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _share_url_builders() -> None:
    """Werkzeug's URL builders, generated once per route for the run instead of once per route and app.

    Each test makes its own app, and each app's URL map turned every rule into two builder functions
    through Python's `ast` and `compile`: 12 of create_app's 18 ms. The function made depends
    only on the rule (its text, its parts as parsed, the defaults), never on the app: it takes the rule
    it builds for as its first argument (Rule.compile binds it). So a rule seen before gets the same
    function again; any other rule, or a Werkzeug whose Rule no longer looks like 3.1's, is compiled as
    usual. Rules whose defaults fill one of their own variables are always compiled: their builders
    hold that value as a converter wrote it."""
    from werkzeug.routing.rules import Rule

    original = getattr(Rule, "_compile_builder", None)
    if original is None or getattr(original, "shared_by_the_tests", False):
        return
    built: dict[tuple[Any, ...], Callable[..., tuple[str, str]]] = {}

    def compile_builder(rule: Rule, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        defaults = rule.defaults or {}
        if any(is_dynamic and part in defaults for is_dynamic, part in rule._trace):
            return original(rule, append_unknown)
        key = (rule.rule, tuple(rule._trace), append_unknown, tuple(sorted((k, repr(v)) for k, v in defaults.items())))
        if (function := built.get(key)) is None:
            function = built[key] = original(rule, append_unknown)
        return function

    compile_builder.shared_by_the_tests = True  # type: ignore[attr-defined]
    Rule._compile_builder = compile_builder  # type: ignore[method-assign]


_share_url_builders()
TOKENS = TokenMinter()  # one RSA key for the run: session tokens are minted with it
STRIPE_STANDIN_DIR = tempfile.mkdtemp(prefix="stripe-standin-")  # the stand-in's objects, never instance/
MAIL_DIR = tempfile.mkdtemp(prefix="mailbox-")  # the development mailbox, never instance/mail
STRIPE_WEBHOOK_SECRET = "whsec_test_c3RyaXBlIHRlc3Qgc2VjcmV0"  # the suite signs Stripe events with it


def database_settings(database_url: str) -> dict[str, str]:
    """DATABASE_URL, and DATABASE_URL_DIRECT when it goes through the suite's pooler: for an app,
    or the environment of a gunicorn or `flask` process."""
    if database_url in DIRECT_URLS:
        return {"DATABASE_URL": database_url, "DATABASE_URL_DIRECT": DIRECT_URLS[database_url]}
    return {"DATABASE_URL": database_url}


def settings(database_url: str, **overrides: Any) -> dict[str, Any]:
    """A test app's environment: Clerk configured networklessly with the run's own key."""
    return {
        "TESTING": True,
        **database_settings(database_url),
        "SECRET_KEY": "test-secret-key",
        "CLERK_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CLERK_PUBLISHABLE_KEY": TEST_PUBLISHABLE_KEY,
        "CLERK_JWT_KEY": TOKENS.public_pem,
        "SHOP_DEV_STRIPE_DIR": STRIPE_STANDIN_DIR,
        "MAIL_DIR": MAIL_DIR,
        "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        **overrides,
    }


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url, drop = _fresh_database_url()
    app = create_app(settings(url))
    with app.app_context():
        flask_migrate.upgrade()  # the schema comes from the committed migrations, as in production
        db.engine.dispose()
    yield url
    _dispose_emptying_engine(url)
    drop()


# One connection a database, kept for the run, that empties the tables after each test (a new
# connection for each test cost a PostgreSQL backend's start, 8 ms of the 11 the emptying took).
_EMPTYING_ENGINES: dict[str, Engine] = {}


def empty_all_tables(database_url: str) -> None:
    """Every table emptied and every id sequence back at 1, as after the migrations.

    DELETE, children first, rather than TRUNCATE: the suite's tables hold a few rows, and TRUNCATE's
    new files cost 45 ms a test against 5 ms (40 s of the suite's run). Every statement goes in one
    round trip, in one transaction."""
    engine = _EMPTYING_ENGINES.get(database_url)
    if engine is None:
        # pool_pre_ping: a test that restarts or cuts the database leaves a dead connection behind.
        engine = _EMPTYING_ENGINES[database_url] = create_engine(
            database_url, pool_size=1, max_overflow=0, pool_pre_ping=True
        )
    public_sequences = "SELECT oid FROM pg_class WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace"
    statements = [
        *(f'DELETE FROM "{table.name}"' for table in reversed(db.metadata.sorted_tables)),
        f"SELECT setval(oid, 1, false) FROM ({public_sequences}) AS sequences",
    ]
    with engine.begin() as connection:
        connection.exec_driver_sql(";\n".join(statements))


def _dispose_emptying_engine(database_url: str) -> None:
    if (engine := _EMPTYING_ENGINES.pop(database_url, None)) is not None:
        engine.dispose()


class CompiledTemplates(BytecodeCache):
    """The templates' compiled code, kept for the run (in memory) and shared by the apps the tests make.

    Each test makes its own app, and each app's Jinja environment compiled every template it rendered
    again: about 4 ms a template, a few templates a test. Jinja checks each entry against the
    checksum of the template's source, so a template changed on disk is compiled afresh; what a
    template renders is the same either way (the code is the same code)."""

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if (code := self.code.get(bucket.key)) is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


COMPILED_TEMPLATES = CompiledTemplates()


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., Flask]]:
    """Build an app with extra settings; every app made is cleaned up after the test."""
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app(settings(database_url, **overrides))
        app.jinja_env.bytecode_cache = COMPILED_TEMPLATES
        made.append(app)
        return app

    yield make
    empty_all_tables(database_url)
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def stripe_standin(app: Flask) -> Iterator[str]:
    """The app on a real HTTP server, its local Stripe stand-in the API the `stripe` library calls
    (and the sender of signed events to that server's /api/webhooks/stripe); yields the base URL."""
    with live_server(app) as url:
        app.config["STRIPE_API_BASE"] = f"{url}/dev-stripe"
        yield url
        # The stand-in sends its events from threads of its own (devtools/stripe_standin/routes.py: deliver).
        # One still under way when the server stops may be handled after this test's tables are emptied,
        # leaving its webhook_events row in the next test's (seen once: "no event recorded" failed there).
        for thread in threading.enumerate():
            if thread.name == "stripe-standin-events":
                thread.join(timeout=30)


@pytest.fixture
def deliver(client: FlaskClient):
    """POST a Clerk event to the webhook endpoint, signed as Svix would."""
    import json

    def send(payload: Any, *, svix_id: str | None = None, **sign: Any):
        body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
        return client.post("/api/webhooks/clerk", data=body, headers=signed_headers(body, svix_id=svix_id, **sign))

    return send


@pytest.fixture
def tokens() -> TokenMinter:
    return TOKENS


@pytest.fixture
def make_user(app: Flask):
    """A live user in the mirror, written through the mirror as a webhook would."""
    counter = iter(range(1, 10_000))

    def make(
        clerk_id: str = "user_shopper", *, email: str | None = None, role: Role = Role.CLIENT, **names: Any
    ) -> User:
        with app.app_context():
            mirror.apply_snapshot(
                db.session.connection(),
                UserSnapshot.of(
                    clerk_id=clerk_id,
                    email=email or f"{clerk_id}@example.com",
                    first_name=names.get("first_name", "Test"),
                    last_name=names.get("last_name", f"Shopper {next(counter)}"),
                    updated_at=1,
                ),
            )
            user = db.session.scalar(db.select(User).where(User.clerk_id == clerk_id))
            user.role = role
            db.session.commit()
            db.session.refresh(user)
            db.session.expunge(user)
            return user

    return make


@pytest.fixture
def sign_in(client: FlaskClient, make_user, tokens: TokenMinter):
    """Sign a test client in as a (new) mirrored user: a valid `__session` cookie, as clerk-js sets it."""

    def sign_in_as(clerk_id: str = "user_shopper", *, as_client: FlaskClient | None = None, **user: Any) -> User:
        signed_in = make_user(clerk_id, **user)
        (as_client or client).set_cookie("__session", tokens.mint(clerk_id))
        return signed_in

    return sign_in_as


@pytest.fixture
def stoppable_postgres(tmp_path_factory):
    """A PostgreSQL of this test's own, so stopping it cannot disturb the rest of the suite."""
    import pgserver
    from pgserver._commands import pg_ctl

    data = tmp_path_factory.mktemp("stoppable") / "pgdata"
    server = pgserver.get_server(data, cleanup_mode="delete")

    class Handle:
        url = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
        libpq = server.get_uri()

        @staticmethod
        def stop():
            pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=data, user=server.system_user)

        @staticmethod
        def start():
            with server._lock:
                server.ensure_postgres_running()

    yield Handle
    server.cleanup()
