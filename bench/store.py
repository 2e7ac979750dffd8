"""Storefront speed: the catalogue and cart pages through gunicorn, signed in and signed out; and
"all orders of user X" with 100,000 users and 1,000,000 orders.

    .venv/bin/python bench/store.py             # or: make bench-store

What it does:

1. Creates its own database, `bench_store` on the embedded PostgreSQL (dropped at the end;
   --keep-database keeps it), or uses BENCH_DATABASE_URL, whose `public` schema it EMPTIES first.
   Builds the schema with the committed migrations and loads the demo catalogue (`flask seed`).
2. Makes an RSA key for the run and configures the app with it as Clerk's (CLERK_JWT_KEY, and a
   publishable key naming the issuer), exactly as a production deployment verifies Clerk's
   session tokens without a network call. Creates one shopper per connection in the mirror, each
   with three products in the cart, and mints each an RS256 session token shaped like Clerk's.
3. Starts gunicorn with the committed gunicorn.conf.py on 127.0.0.1 (a free port), in production
   mode. Each connection first GETs the page once to receive its Flask session cookie (as a
   browser keeps it), then wrk (C, keep-alive, one connection per thread) drives GET / and GET
   /cart, signed out (no Clerk cookie) and signed in (`__session` + `__client_uat` cookies, as
   clerk-js sets them), alternating, for several rounds; the median round is reported.
   Signed out, /cart is the redirect to the sign-in page (there is no cart page to show).
4. Stops gunicorn, bulk-loads 100,000 users and 1,000,000 orders (with 1.5 million lines) by
   INSERT … SELECT generate_series, ANALYZEs, prints EXPLAIN of the query behind /orders and
   GET /api/orders (one statement: the user's orders by ix_orders_user_id_created_at, each with its
   lines by ix_order_items_order_id) and times `shop.store.orders.history`, the function those
   routes call, for many random users: median and p99.

Targets (issue 4): signed-in pages within 10% of signed-out; all orders of a user under 2 ms median.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, fresh_database, libpq, start_gunicorn  # noqa: E402
from tests.support import TEST_PUBLISHABLE_KEY, TokenMinter  # noqa: E402

DATABASE = "bench_store"
RESULTS = ROOT / "bench" / "results"
USERS = 100_000
ORDERS = 1_000_000
WRK_SCRIPT = r"""
local cookies = {%s}
local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("cookie", cookies[((next_thread - 1) %% #cookies) + 1])
end

function init(args)
  if cookie ~= "" then wrk.headers["Cookie"] = cookie end
  wrk.headers["Accept"] = "text/html"
end
"""


# --------------------------------------------------------------------------- the database


def prepare_database() -> tuple[str, Callable[[], None]]:
    """A SQLAlchemy URL to an empty database (the schema comes with `prepare_shop`), and how to drop it."""
    return fresh_database(DATABASE)


def app_env(database_url: str, minter: TokenMinter) -> dict[str, str]:
    """Production mode (no FLASK_DEBUG, no stand-in), Clerk configured networklessly with our key."""
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key",
        "CLERK_PUBLISHABLE_KEY": TEST_PUBLISHABLE_KEY,
        "CLERK_JWT_KEY": minter.public_pem,
    }


def build_app(database_url: str, minter: TokenMinter):
    from shop import create_app

    app = create_app(app_env(database_url, minter))
    logging.getLogger("shop").setLevel(logging.WARNING)
    return app


def prepare_shop(app, shoppers: int) -> list[str]:
    """Schema, demo catalogue, and `shoppers` users with three products in their carts."""
    import flask_migrate

    from shop import mirror
    from shop.clerk.users import UserSnapshot
    from shop.extensions import db
    from shop.models import User
    from shop.store import cart
    from shop.store.seed import seed

    clerk_ids = [f"user_bench_shopper_{n:02d}" for n in range(shoppers)]
    with app.app_context():
        flask_migrate.upgrade()
        seed()
        for n, clerk_id in enumerate(clerk_ids):
            mirror.apply_snapshot(
                db.session.connection(),
                UserSnapshot.of(clerk_id, f"shopper{n}@example.com", 1, first_name="Bench", last_name=f"Shopper {n}"),
            )
            db.session.commit()
            user_id = db.session.scalar(db.select(User.id).where(User.clerk_id == clerk_id))
            for slug in ("ceramic-mug", "dot-notebook", "tea-sampler"):
                cart.add(user_id, slug=slug, quantity=1 + n % 2)
        db.engine.dispose()
    return clerk_ids


# --------------------------------------------------------------------------- gunicorn and wrk


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(port: int, path: str, cookie: str) -> tuple[int, str, str]:
    """GET once, as the browser would before the benchmark: (status, body, the Flask session cookie)."""
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Accept": "text/html"})
    if cookie:
        request.add_header("Cookie", cookie)
    try:
        response = opener.open(request, timeout=10)
    except urllib.error.HTTPError as exc:  # a 302 surfaces here with NoRedirect
        response = exc
    session = ""
    for header in response.headers.get_all("Set-Cookie") or []:
        if header.startswith("session="):
            session = header.split(";", 1)[0]
    return response.status, response.read().decode(), session


def cookie_headers(port: int, path: str, clerk_cookies: list[str], check) -> list[str]:
    """One Cookie header per connection: the Clerk cookies (if any) plus the Flask session cookie."""
    headers = []
    for clerk in clerk_cookies:
        status, body, session = fetch(port, path, clerk)
        check(status, body)
        headers.append("; ".join(part for part in (clerk, session) if part))
    return headers


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def server_pids(gunicorn_pid: int) -> list[int]:
    """gunicorn's master and workers."""
    pids = [gunicorn_pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == gunicorn_pid:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def postgres_pids(database_url: str) -> list[int]:
    """The PostgreSQL backends serving the benchmark's database (gunicorn's pooled connections)."""
    with psycopg.connect(libpq(database_url)) as conn:
        return [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]


class CpuMeter:
    """CPU seconds used by the server side (gunicorn and its PostgreSQL backends) during a run:
    unlike requests per second, it does not depend on what else the machine is doing."""

    def __init__(self, gunicorn_pid: int, database_url: str):
        self.gunicorn_pid, self.database_url = gunicorn_pid, database_url

    def sample(self) -> dict[str, dict[int, float]]:
        return {
            "app": {pid: process_cpu_seconds(pid) for pid in server_pids(self.gunicorn_pid)},
            "db": {pid: process_cpu_seconds(pid) for pid in postgres_pids(self.database_url)},
        }

    @staticmethod
    def used(before: dict, after: dict) -> dict[str, float]:
        return {
            side: sum(seconds - before[side].get(pid, 0.0) for pid, seconds in after[side].items())
            for side in ("app", "db")
        }


def run_wrk(
    port: int, path: str, cookies: list[str], connections: int, duration: int, meter: CpuMeter | None = None
) -> dict[str, float]:
    lua_cookies = ", ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in cookies)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % lua_cookies)
    before = meter.sample() if meter else None
    try:
        completed = subprocess.run(
            ["wrk", f"-t{connections}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
             "-s", script.name, f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        os.unlink(script.name)
    cpu = CpuMeter.used(before, meter.sample()) if meter else {"app": 0.0, "db": 0.0}
    if completed.returncode != 0:
        sys.exit(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    out = completed.stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or "Socket errors" in out:
        sys.exit(f"wrk saw errors on {path}:\n{out}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms("50"),
        "p99": ms("99"),
        "app_ms": 1000 * cpu["app"] / requests,
        "db_ms": 1000 * cpu["db"] / requests,
        "cpu_ms": 1000 * (cpu["app"] + cpu["db"]) / requests,
    }


def http_benchmark(args, database_url: str, minter: TokenMinter, clerk_ids: list[str]) -> dict[str, dict]:
    port = free_port()
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS / "store-gunicorn.log"
    flags = [f"--workers={args.workers}"] if args.workers else []
    flags += [f"--threads={args.threads}"] if args.threads else []
    server = start_gunicorn(app_env(database_url, minter), port, log_path, flags)
    try:
        now = int(time.time())
        signed_in_cookies = [
            f"__session={minter.mint(clerk_id, iat=now, nbf=now - 5, exp=now + 3600)}; __client_uat={now}"
            for clerk_id in clerk_ids
        ]

        def signed_in_page(status: int, body: str) -> None:
            assert status == 200 and "Bench Shopper" in body and 'data-testid="cart-count"' in body, status

        def signed_out_page(status: int, body: str) -> None:
            assert status == 200 and "Sign in</a>" in body, status

        def cart_page(status: int, body: str) -> None:
            signed_in_page(status, body)
            assert "Dot-grid notebook" in body

        def sign_in_redirect(status: int, body: str) -> None:
            assert status == 302, status

        cases = {
            ("/", "signed out"): cookie_headers(port, "/", [""] * len(clerk_ids), signed_out_page),
            ("/", "signed in"): cookie_headers(port, "/", signed_in_cookies, signed_in_page),
            ("/cart", "signed out"): cookie_headers(port, "/cart", [""] * len(clerk_ids), sign_in_redirect),
            ("/cart", "signed in"): cookie_headers(port, "/cart", signed_in_cookies, cart_page),
        }
        for (path, _), cookies in cases.items():  # warm every worker and cache
            run_wrk(port, path, cookies, args.connections, max(1, args.duration // 3))
        meter = CpuMeter(server.pid, database_url)
        rounds: dict[tuple[str, str], list[dict]] = {case: [] for case in cases}
        for round_number in range(1, args.rounds + 1):
            for case, cookies in cases.items():
                result = run_wrk(port, case[0], cookies, args.connections, args.duration, meter)
                rounds[case].append(result)
                print(
                    f"  round {round_number}: GET {case[0]:<6} {case[1]:<10} {result['rps']:8.1f} req/s"
                    f"   p50 {result['p50']:6.2f} ms   p99 {result['p99']:6.2f} ms"
                    f"   CPU {result['app_ms']:.2f} app + {result['db_ms']:.2f} db ms/request",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
    summary = {case: medians(results) for case, results in rounds.items()}
    # Each round runs the cases back to back, so a round's ratio compares like with like even
    # when other work on the machine comes and goes between rounds: the median of those ratios.
    for path in ("/", "/cart"):
        pairs = zip(rounds[(path, "signed in")], rounds[("/", "signed out")], strict=True)
        ratios = [(i["rps"] / o["rps"], i["cpu_ms"] / o["cpu_ms"]) for i, o in pairs]
        summary[(path, "signed in")]["rps_ratio"] = statistics.median(r for r, _ in ratios)
        summary[(path, "signed in")]["cpu_ratio"] = statistics.median(c for _, c in ratios)
    return summary


def medians(results: list[dict]) -> dict:
    """Each figure's median over the rounds (the rounds are interleaved, so drift hits all cases alike)."""
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def overhead_breakdown(app, minter: TokenMinter, clerk_id: str, repeat: int = 300) -> dict[str, float]:
    """In-process CPU (µs, best of 7) of what a signed-in catalogue adds, piece by piece."""
    from shop.auth.signed_in import lookup
    from shop.extensions import db
    from shop.models import User
    from shop.store import catalogue

    def best(function) -> float:
        samples = []
        for _ in range(7):
            started = time.process_time()
            for _ in range(repeat):
                function()
            samples.append((time.process_time() - started) / repeat * 1e6)
        return min(samples)

    with app.app_context():
        user_id = db.session.scalar(db.select(User.id).where(User.clerk_id == clerk_id))

        def rolled_back(function):
            def run():
                function()
                db.session.rollback()

            return run

        figures = {
            "catalogue query": best(rolled_back(lambda: catalogue.search("", 1))),
            "catalogue query + cart count": best(rolled_back(lambda: catalogue.search("", 1, cart_of=user_id))),
            "the user's row (shop.auth.signed_in.lookup)": best(rolled_back(lambda: lookup(clerk_id))),
        }
    signed_out, signed_in = app.test_client(), app.test_client()
    now = int(time.time())
    signed_in.set_cookie("__session", minter.mint(clerk_id, iat=now, exp=now + 3600))
    signed_in.set_cookie("__client_uat", str(now))
    headers = {"Accept": "text/html"}
    for client in (signed_out, signed_in):
        client.get("/", headers=headers)
    figures["page / signed out"] = best(lambda: signed_out.get("/", headers=headers))
    figures["page / signed in"] = best(lambda: signed_in.get("/", headers=headers))
    with app.app_context():
        db.engine.dispose()
    return figures


# --------------------------------------------------------------------------- all orders of user X


LOAD_SQL = [
    # 100,000 live users (the bench's shoppers are there already).
    """
    INSERT INTO users (clerk_id, email, email_key, first_name, last_name, clerk_updated_at)
    SELECT 'user_bulk_' || g, 'bulk' || g || '@example.com', 'bulk' || g || '@example.com', 'Bulk', 'User ' || g, 1
    FROM generate_series(1, %(users)s) AS g
    """,
    # 1,000,000 orders, 10 per user on average, users interleaved (a user's orders are spread
    # over the whole table, as they would be after months of trading), over two years.
    """
    INSERT INTO orders (user_id, email, status, total_cents, currency, idempotency_key, created_at, updated_at)
    SELECT %(first_id)s + n, 'bulk' || (n + 1) || '@example.com',
           (ARRAY['placed', 'shipped', 'delivered', 'delivered', 'cancelled'])[1 + g %% 5],
           1000 + g %% 9000, 'EUR', 'bulk-' || g,
           timestamptz '2024-01-01' + g * interval '60 seconds',
           timestamptz '2024-01-01' + g * interval '60 seconds'
    FROM generate_series(1, %(orders)s) AS g, LATERAL (SELECT (g::bigint * 7919) %% %(users)s AS n) AS pick
    """,
    # One line per order, a second on every other order: 1.5 million lines.
    """
    INSERT INTO order_items (order_id, product_id, product_name, unit_price_cents, quantity)
    SELECT o.id, p.id, p.name, p.price_cents, 1 + o.id %% 3
    FROM orders o JOIN products p ON p.slug = 'ceramic-mug'
    """,
    """
    INSERT INTO order_items (order_id, product_id, product_name, unit_price_cents, quantity)
    SELECT o.id, p.id, p.name, p.price_cents, 1
    FROM orders o JOIN products p ON p.slug = 'tea-sampler'
    WHERE o.id %% 2 = 0
    """,
]


def load_orders(database_url: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        conn.execute(LOAD_SQL[0], {"users": USERS})
        # the bulk users got consecutive ids: one statement, one identity sequence, no other writer
        first_id = conn.execute("SELECT id FROM users WHERE clerk_id = 'user_bulk_1'").fetchone()[0]
        for statement in LOAD_SQL[1:]:
            conn.execute(statement, {"users": USERS, "orders": ORDERS, "first_id": first_id})
        conn.execute("VACUUM ANALYZE users")
        conn.execute("VACUUM ANALYZE orders")
        conn.execute("VACUUM ANALYZE order_items")
    return time.perf_counter() - started


def orders_benchmark(app, samples: int) -> dict:
    from sqlalchemy import func, select

    from shop.extensions import db
    from shop.models import User
    from shop.store import orders
    from shop.store.models import Order

    with app.app_context():
        counts = {
            "users": db.session.scalar(select(func.count()).select_from(User)),
            "orders": db.session.scalar(select(func.count()).select_from(Order)),
        }
        user_ids = list(db.session.scalars(select(User.id).where(User.clerk_id.like("user_bulk_%"))))
        rng = random.Random(4)
        picked = [rng.choice(user_ids) for _ in range(samples)]

        compiled = orders.HISTORY.params(user_id=picked[0]).compile(db.engine, compile_kwargs={"literal_binds": True})
        plan = db.session.execute(db.text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {compiled}")).scalars().all()
        db.session.rollback()

        for user_id in picked[:200]:  # warm the connection, the statement cache and the buffers
            orders.history(user_id)
            db.session.rollback()
        timings, sizes = [], []
        for user_id in picked:
            started = time.perf_counter()
            found = orders.history(user_id)
            timings.append((time.perf_counter() - started) * 1000)
            sizes.append(len(found))
            db.session.rollback()
        db.engine.dispose()

    def stats(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"median": statistics.median(ordered), "p99": ordered[int(len(ordered) * 0.99) - 1]}

    return {
        **counts,
        "plan": plan,
        "sql": str(compiled),
        "history": stats(timings),
        "orders_per_user": statistics.mean(sizes),
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four page runs; the median is kept")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections (one shopper each)")
    parser.add_argument("--workers", type=int, help="override gunicorn.conf.py's workers")
    parser.add_argument("--threads", type=int, help="override gunicorn.conf.py's threads")
    parser.add_argument("--samples", type=int, default=5000, help="users timed for all orders of user X")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-orders", action="store_true")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    if not args.skip_http and shutil.which("wrk") is None:
        sys.exit("bench/store.py needs wrk: `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk` (macOS).")

    minter = TokenMinter()
    database_url, drop = prepare_database()
    try:
        app = build_app(database_url, minter)
        clerk_ids = prepare_shop(app, args.connections)
        print(f"database: {make_url(database_url).render_as_string(hide_password=True)}")
        print(f"machine: {os.cpu_count()} cores; PostgreSQL on the same machine")

        if not args.skip_http:
            print("\nwhat a signed-in catalogue adds, in-process (app CPU only, µs per call, best of 7):")
            for name, micros in overhead_breakdown(app, minter, clerk_ids[0]).items():
                print(f"  {name:<42} {micros:7.0f}")
            print(
                f"\npages through gunicorn (gunicorn.conf.py), wrk: {args.connections} keep-alive connections, "
                f"{args.duration} s per run, {args.rounds} rounds",
                flush=True,
            )
            pages = http_benchmark(args, database_url, minter, clerk_ids)
            cores = os.cpu_count() or 1
            print(f"\npage (medians of {args.rounds} rounds)   req/s   p50 ms   p99 ms   CPU ms/request (app + db)"
                  f"   req/s the CPU allows on {cores} cores")  # fmt: skip
            for (path, who), r in pages.items():
                print(
                    f"GET {path:<6} {who:<17} {r['rps']:8.1f} {r['p50']:8.2f} {r['p99']:8.2f}"
                    f"   {r['cpu_ms']:6.2f} ({r['app_ms']:.2f} + {r['db_ms']:.2f})"
                    f"   {1000 * cores / r['cpu_ms']:8.0f}"
                )
            signed_in, cart = pages[("/", "signed in")], pages[("/cart", "signed in")]
            print("median over the rounds of each round's ratio to the signed-out catalogue of that round:")
            print(
                f"  catalogue, signed in vs signed out: {100 * (signed_in['rps_ratio'] - 1):+.1f}% req/s, "
                f"{100 * (signed_in['cpu_ratio'] - 1):+.1f}% CPU per request (target: within 10%)"
            )
            print(
                f"  cart (signed in) vs catalogue signed out: {100 * (cart['rps_ratio'] - 1):+.1f}% req/s, "
                f"{100 * (cart['cpu_ratio'] - 1):+.1f}% CPU per request "
                "(signed out, /cart is only a redirect to sign-in)"
            )

        if not args.skip_orders:
            print(f"\nloading {USERS:,} users and {ORDERS:,} orders …", flush=True)
            seconds = load_orders(database_url)
            print(f"loaded in {seconds:.1f} s")
            result = orders_benchmark(app, args.samples)
            print(f"users: {result['users']:,}   orders: {result['orders']:,}   "
                  f"orders per sampled user: {result['orders_per_user']:.1f}")  # fmt: skip
            print("\nthe query behind /orders and GET /api/orders:")
            print("  " + " ".join(result["sql"].split()))
            print("EXPLAIN (ANALYZE, BUFFERS):")
            for line in result["plan"]:
                print("  " + line)
            print(f"\nall orders of user X with their lines, {args.samples:,} random users, in-process through")
            print("the app's session (shop.store.orders.history, as GET /api/orders calls it):")
            print(f"  median {result['history']['median']:.3f} ms   p99 {result['history']['p99']:.3f} ms"
                  "   (target: median under 2 ms)")  # fmt: skip
    finally:
        if args.keep_database:
            print(f"kept database {DATABASE}")
        else:
            drop()


if __name__ == "__main__":
    main()
