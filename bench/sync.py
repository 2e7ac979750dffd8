"""`flask sync-clerk sync` at scale: 100,000 Clerk users into an empty mirror, then again with nothing changed.

    .venv/bin/python bench/sync.py                 # --users N to change the size

What it does:

1. Starts a stand-in Clerk Backend API on 127.0.0.1 in its own process: it generates the users
   (Clerk's User shape: one or two e-mail addresses, a Google account for a third of them, a few
   without any e-mail, about 1 KB of metadata with 1 in 100 near Clerk's 8 KB cap, some phones,
   bans and locks) and keeps each one serialized, so a page costs a join of 500 byte strings.
   It answers GET /v1/users?limit&offset&order_by, /v1/users/count and /v1/users/{id}, checks
   the Bearer key, and counts the requests it answers.
2. Creates its own database, `bench_sync` on the embedded PostgreSQL (dropped at the end;
   --keep-database keeps it), or uses BENCH_DATABASE_URL, whose `public` schema it EMPTIES first.
   Builds the schema with the committed migrations.
3. Runs the sync twice, each time in a fresh Python process (so that each peak memory is its
   own), through the same calls `flask sync-clerk sync` makes (the advisory lock, then
   shop.sync.reconcile.sync with the app's Backend API client). The first run fills the empty
   mirror; the second finds nothing changed.
4. Prints, for each run: seconds, Backend API calls (the client's count and the server's), SQL
   statements (a SQLAlchemy before_cursor_execute listener; the staging table's COPYs go around
   it), user rows written (the row counts of INSERT/UPDATE/DELETE statements on `users`, and
   independently the rows of `users` whose xmin changed, compared in SQL; the run's own `sync_runs`
   record is not a user row), peak memory of the sync process (ru_maxrss), and the summary line.
   Then checks the targets: at most 201 API calls for the listing (one per 500 users, and the
   count), under 60 s (300 s above 100,000 users) and 250 MB for the first run, no user row
   written by the second.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import resource
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import fresh_database  # noqa: E402

DATABASE = "bench_sync"
SECRET_KEY = "sk_test_YmVuY2htYXJrIHNlY3JldCBrZXkgZm9yIHN5bmM"  # noqa: S105  (the stand-in's, not a real key)
BASE_TIME = 1_700_000_000_000
WRITES_USERS = re.compile(r"\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+users\b", re.IGNORECASE)


# -- the stand-in Clerk (its own process) ----------------------------------------------------


def metadata(index: int) -> dict:
    """About 1 KB of metadata a user, as a shop's integrations leave it; 1 user in 100 near Clerk's 8 KB cap."""
    public = {"plan": ("free", "pro", "team")[index % 3], "seats": index % 17, "tags": [f"tag{index % 40}"] * 6}
    private = None if index % 2 else {"crm_id": f"crm_{index:012d}", "notes": "n" * 700}
    unsafe = {"marketing_opt_in": index % 4 == 0, "theme": "dark", "recent": [f"product-{index % 97}"] * 25}
    if index % 100 == 42:
        public["history"] = "h" * 7_800  # near the 8 KB cap, still kept
    return {"public_metadata": public, "private_metadata": private, "unsafe_metadata": unsafe}


def generate_user(index: int) -> dict:
    clerk_id = f"user_2bench{index:020d}"
    primary = f"idn_primary{index:010d}"
    google = index % 3 == 0
    addresses = [
        {
            "id": primary,
            "object": "email_address",
            "email_address": f"shopper{index}@example.com",
            "reserved": False,
            "verification": {"status": "verified", "strategy": "from_oauth_google" if google else "email_code"},
            "linked_to": [{"type": "oauth_google", "id": f"idn_google{index:010d}"}] if google else [],
            "created_at": BASE_TIME + index,
            "updated_at": BASE_TIME + index,
        }
    ]
    if index % 4 == 0:
        addresses.insert(
            0,
            {
                "id": f"idn_second{index:010d}",
                "object": "email_address",
                "email_address": f"work{index}@example.org",
                "reserved": False,
                "verification": {"status": "verified", "strategy": "email_code"},
                "linked_to": [],
                "created_at": BASE_TIME + index,
                "updated_at": BASE_TIME + index,
            },
        )
    no_email = index % 50 == 7
    if index % 5 == 1:
        addresses_phone = [
            {"id": f"idn_phone{index:010d}", "object": "phone_number", "phone_number": f"+1555{index % 10_000_000:07d}"}
        ]
    else:
        addresses_phone = []
    return {
        "object": "user",
        "id": clerk_id,
        "username": None,
        "first_name": f"First{index}",
        "last_name": f"Last{index}",
        "image_url": f"https://img.clerk.com/{clerk_id}",
        "has_image": True,
        "primary_email_address_id": None if no_email else primary,
        "primary_phone_number_id": addresses_phone[0]["id"] if addresses_phone else None,
        "primary_web3_wallet_id": None,
        "password_enabled": not google,
        "two_factor_enabled": False,
        "email_addresses": [] if no_email else addresses,
        "phone_numbers": addresses_phone,
        "web3_wallets": [],
        "external_accounts": [
            {
                "object": "google_account",
                "id": f"idn_google{index:010d}",
                "provider": "oauth_google",
                "email_address": f"shopper{index}@example.com",
                "first_name": f"First{index}",
                "last_name": f"Last{index}",
                "avatar_url": f"https://lh3.googleusercontent.com/a/{index}",
                "verification": {"status": "verified", "strategy": "oauth_google"},
            }
        ]
        if google
        else [],
        **metadata(index),
        "external_id": None,
        "banned": index % 500 == 3,
        "locked": index % 700 == 5,
        "last_sign_in_at": BASE_TIME + index,
        "created_at": BASE_TIME + index,
        "updated_at": BASE_TIME + index,
    }


def serve_clerk(count: int, port_queue) -> None:
    users = [json.dumps(generate_user(i), separators=(",", ":")).encode() for i in range(count)]
    by_id = {f"user_2bench{i:020d}": i for i in range(count)}
    count_body = json.dumps({"object": "total_count", "total_count": count}).encode()
    lock = threading.Lock()
    served = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/__stats":
                return self.send(200, json.dumps({"requests": served[0]}).encode())
            with lock:
                served[0] += 1
            if self.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
                error = {"errors": [{"code": "clerk_key_invalid", "message": "invalid", "long_message": "invalid"}]}
                return self.send(401, json.dumps(error).encode())
            query = parse_qs(url.query)
            if url.path == "/v1/users/count":
                return self.send(200, count_body)
            if url.path == "/v1/users":
                limit = int(query.get("limit", ["10"])[0])
                offset = int(query.get("offset", ["0"])[0])
                page = users[offset : offset + limit]
                if query.get("order_by", ["-created_at"])[0].startswith("-"):
                    page = users[::-1][offset : offset + limit]
                return self.send(200, b"[" + b",".join(page) + b"]")
            if url.path.startswith("/v1/users/"):
                index = by_id.get(url.path.rsplit("/", 1)[1])
                if index is None:
                    error = {"errors": [{"code": "resource_not_found", "message": "not found"}]}
                    return self.send(404, json.dumps(error).encode())
                return self.send(200, users[index])
            return self.send(404, b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


# -- one sync, in its own process ------------------------------------------------------------


def worker(database_url: str, api_url: str) -> None:
    import logging

    from sqlalchemy import event

    from shop import create_app
    from shop.clerk.api import clerk_api
    from shop.extensions import db
    from shop.sync import reconcile

    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "bench",
            "CLERK_SECRET_KEY": SECRET_KEY,
            "CLERK_API_URL": api_url,
        }
    )
    logging.getLogger("shop").setLevel(logging.WARNING)
    figures = {"statements": 0, "rows_written": 0}
    with app.app_context():
        clerk_api()  # everything imported and built before the sync starts: the process's baseline
    figures["baseline_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    with app.app_context():

        def before(conn, cursor, statement, parameters, context, executemany):
            figures["statements"] += 1

        def after(conn, cursor, statement, parameters, context, executemany):
            if WRITES_USERS.match(statement) and cursor.rowcount > 0:  # user rows, not the sync_runs record
                figures["rows_written"] += cursor.rowcount

        event.listen(db.engine, "before_cursor_execute", before)
        event.listen(db.engine, "after_cursor_execute", after)
        started = time.perf_counter()
        with reconcile.sync_lock():
            report = reconcile.sync(clerk_api())
        figures["seconds"] = time.perf_counter() - started
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)
    figures.update(
        api_calls=report.api_calls,
        ok=report.ok,
        errors=report.errors,
        summary=report.summary(),
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
    )
    print(json.dumps(figures))


# -- the conductor ---------------------------------------------------------------------------


def migrate(database_url: str) -> None:
    import flask_migrate

    from shop import create_app
    from shop.extensions import db

    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "SECRET_KEY": "bench"})
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()


def psql(database_url: str, statement: str) -> int | None:
    import psycopg
    from sqlalchemy.engine import make_url

    with psycopg.connect(make_url(database_url).set(drivername="postgresql").render_as_string(False)) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchone()[0] if cursor.description else None


def remember_xmins(database_url: str) -> None:
    """Every row's xmin (it changes on any write to the row, even of identical data), kept in SQL."""
    psql(database_url, "DROP TABLE IF EXISTS bench_xmin")
    psql(database_url, "CREATE TABLE bench_xmin AS SELECT clerk_id, xmin::text AS row_xmin FROM users")


def rows_with_new_xmin(database_url: str) -> int:
    return psql(
        database_url,
        "SELECT count(*) FROM users u LEFT JOIN bench_xmin b USING (clerk_id)"
        " WHERE b.row_xmin IS DISTINCT FROM u.xmin::text",
    )


def run_worker(database_url: str, api_url: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", database_url, api_url],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        sys.exit(f"the sync process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def served(api_url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(api_url.removesuffix("/v1") + "/__stats", timeout=10) as response:  # noqa: S310
        return json.load(response)["requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("DATABASE_URL", "API_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    clerk = context.Process(target=serve_clerk, args=(args.users, ports), daemon=True)
    clerk.start()
    drop = None
    try:
        print(f"Generating {args.users:,} Clerk users in the stand-in …", flush=True)
        api_url = f"http://127.0.0.1:{ports.get(timeout=600)}/v1"
        database_url, drop = fresh_database(DATABASE)
        migrate(database_url)
        results = []
        for name in ("first sync, empty mirror", "second sync, nothing changed"):
            before = served(api_url)
            remember_xmins(database_url)
            figures = run_worker(database_url, api_url)
            figures["served"] = served(api_url) - before
            figures["rows_touched"] = rows_with_new_xmin(database_url)
            figures["users"] = psql(database_url, "SELECT count(*) FROM users WHERE deleted_at IS NULL")
            results.append(figures)
            print(
                f"{name}: {figures['seconds']:.1f} s, {figures['api_calls']} Backend API calls "
                f"(server answered {figures['served']}), {figures['statements']} SQL statements, "
                f"{figures['rows_written']} user rows written ({figures['rows_touched']} with a new xmin), "
                f"peak memory {figures['peak_mb']:.0f} MB (before the sync: {figures['baseline_mb']:.0f} MB)",
                flush=True,
            )
            print(f"  summary: {figures['summary']}; mirror holds {figures['users']:,} users", flush=True)
            for error in figures["errors"]:
                print(f"  error: {error}")
        first, second = results
        pages = -(-args.users // 500)
        time_limit = 60 if args.users <= 100_000 else 300
        checks = [
            (f"listing calls <= {pages + 1} (count + {pages} pages)", first["api_calls"] <= pages + 1),
            (f"first run < {time_limit} s", first["seconds"] < time_limit),
            ("first run peak < 250 MB", first["peak_mb"] < 250),
            ("first run created every user", first["users"] == args.users and first["ok"]),
            ("second run wrote no user row", second["rows_written"] == 0 and second["rows_touched"] == 0),
        ]
        for label, passed in checks:
            print(f"  {'PASS' if passed else 'FAIL'}  {label}")
        if not all(passed for _, passed in checks):
            sys.exit(1)
    finally:
        clerk.terminate()
        clerk.join()
        if drop and not args.keep_database:
            drop()


if __name__ == "__main__":
    main()
