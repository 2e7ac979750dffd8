"""What the benchmarks share: a free port, a database of their own, and gunicorn started as production starts it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Settings a developer's .env could fill in; passed empty so that wsgi.py's load_dotenv() leaves them unset.
BLANK_SETTINGS = (
    "CLERK_PUBLISHABLE_KEY",
    "CLERK_SECRET_KEY",
    "CLERK_WEBHOOK_SECRET",
    "CLERK_JWT_KEY",
    "CLERK_AUTHORIZED_PARTIES",
    "SHOP_DEV_AUTH",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(
    settings: Mapping[str, str],
    port: int,
    log_path: Path,
    extra_args: Sequence[str] = (),
    *,
    ready_path: str = "/api/health",
    root: Path = ROOT,
    app: str = "wsgi:app",
) -> subprocess.Popen:
    """`gunicorn -c gunicorn.conf.py wsgi:app` on 127.0.0.1:`port` with `settings`; returns once it answers.
    `root`: the tree whose gunicorn.conf.py and wsgi.py it runs (bench/inbox.py's baseline worktree);
    `app`: another WSGI app under the same settings (bench/floor_app.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "GUNICORN_", "CLERK_", "PROMETHEUS_"))}
    env.pop("PORT", None)
    env.update(dict.fromkeys(BLANK_SETTINGS, ""), **settings)
    command = [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
    log = open(log_path, "wb")  # noqa: SIM115 (the server writes to it until it stops)
    server = subprocess.Popen([*command, *extra_args, app], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn stopped (exit {server.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    sys.exit(f"gunicorn did not answer within 60 s; see {log_path}")


def libpq(url: str) -> str:
    """A SQLAlchemy URL as psycopg takes it (no driver name), password kept."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def fresh_database(name: str) -> tuple[str, Callable[[], None]]:
    """An empty database for a benchmark, and how to drop it afterwards: `name` on the embedded
    PostgreSQL, or BENCH_DATABASE_URL, whose `public` schema is EMPTIED (and not dropped after)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from shop.config import normalize_database_url

    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        url = normalize_database_url(url)
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        return url, lambda: None
    from devtools import embedded_postgres

    server = embedded_postgres.start(ROOT / "instance" / "pgdata")
    with psycopg.connect(libpq(server), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(libpq(server), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return make_url(server).set(database=name).render_as_string(hide_password=False), drop


# --- Stripe deliveries: pending orders to pay, and their signed completions ---------------------------------

STRIPE_SECRET = "whsec_bench_c3RyaXBlIGJlbmNoIHNlY3JldA"  # noqa: S105  (any whsec_ works)


def seed_pending_orders(url: str, count: int) -> None:
    """One shopper, one product, and orders 1..`count` of 10.00 EUR, pending, each with Checkout Session
    cs_bench_<n> (and, where the schema has it, the checkout_sessions row checkout writes): what a
    `checkout.session.completed` then pays. Written with SQL, so any commit's schema takes it."""
    import psycopg

    with psycopg.connect(libpq(url), autocommit=True) as conn:
        user = conn.execute(
            "INSERT INTO users (clerk_id, email, email_key, role, clerk_updated_at) "
            "VALUES ('user_bench_buyer', 'buyer@example.com', 'buyer@example.com', 'CLIENT', 1) RETURNING id"
        ).fetchone()[0]
        product = conn.execute(
            "INSERT INTO products (slug, name, price_cents, currency, stock) "
            "VALUES ('bench-mug', 'Mug', 1000, 'EUR', 100000000) RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO orders (user_id, email, total_cents, currency, idempotency_key, stripe_checkout_session_id) "
            "SELECT %s, 'buyer@example.com', 1000, 'EUR', 'bench-key-' || n, 'cs_bench_' || n "
            "FROM generate_series(1, %s) AS n ORDER BY n",
            (user, count),
        )
        conn.execute(
            "INSERT INTO order_items (order_id, product_id, product_name, unit_price_cents, quantity) "
            "SELECT id, %s, 'Mug', 1000, 1 FROM orders",
            (product,),
        )
        if conn.execute("SELECT to_regclass('checkout_sessions') IS NOT NULL").fetchone()[0]:
            conn.execute(
                "INSERT INTO checkout_sessions (id, order_id) SELECT stripe_checkout_session_id, id FROM orders"
            )
        conn.execute("ANALYZE")


def stripe_completion(order: int) -> tuple[str, str, str]:
    """Order `order`'s `checkout.session.completed`, paying exactly what it asked: (event id, body, the
    Stripe-Signature header, made by the stripe library's own signing)."""
    import json
    import uuid

    import stripe

    session = {
        "id": f"cs_bench_{order}",
        "object": "checkout.session",
        "amount_subtotal": 1000,
        "amount_total": 1000,
        "client_reference_id": str(order),
        "currency": "eur",
        "metadata": {"order_id": str(order), "order_key": f"bench-key-{order}"},
        "mode": "payment",
        "payment_intent": f"pi_bench_{order}",
        "payment_status": "paid",
        "status": "complete",
    }
    event_id = f"evt_bench_{uuid.uuid4().hex}"
    event = {
        "id": event_id,
        "object": "event",
        "type": "checkout.session.completed",
        "created": int(time.time()),
        "data": {"object": session},
    }
    body = json.dumps(event, separators=(",", ":"))
    return event_id, body, stripe.WebhookSignature.generate_signature_header(body, STRIPE_SECRET)
