"""What compiling PostgreSQL's INSERT … ON CONFLICT costs, per execution, and what `compiled_once` saves.

    .venv/bin/python bench/upserts.py          # --runs N executions per way (default 3000)

A webhook delivery runs two upserts: the claim of its `webhook_events` row and the mirror's upsert
of the user. Each is executed here N times on one connection (in transactions rolled back every
100 executions) in three ways: built statement executed directly (SQLAlchemy compiles it every
time), as the app runs it (built with `shop.database.compiled_once`: compiled once), and the compiled SQL handed
to the driver (`exec_driver_sql`, the floor: no SQLAlchemy work at all). It prints the CPU time of
this process and the wall time per execution, with `SELECT 1` as a round trip's reference.

Its own database, `bench_upserts` on the embedded PostgreSQL (dropped afterwards), or
BENCH_DATABASE_URL, whose `public` schema it EMPTIES first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import flask_migrate  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.harness import fresh_database  # noqa: E402
from shop import create_app, mirror  # noqa: E402
from shop.extensions import db  # noqa: E402
from shop.webhooks import inbox  # noqa: E402


def per_execution(conn, run: Callable[[], object], runs: int) -> tuple[float, float]:
    """CPU and wall milliseconds per call of `run`, after a warm-up."""
    for _ in range(100):
        run()
    conn.rollback()
    cpu, wall = time.process_time(), time.perf_counter()
    for done in range(1, runs + 1):
        run()
        if done % 100 == 0:
            conn.rollback()  # keeps the transaction short; the same rows are written again
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    conn.rollback()
    return cpu / runs * 1000, wall / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    args = parser.parse_args()

    url, drop = fresh_database("bench_upserts")
    try:
        app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "bench"})
        with app.app_context():
            flask_migrate.upgrade()
            user = {
                "clerk_id": "user_bench",
                "email": "bench@example.com",
                "email_key": "bench@example.com",
                "first_name": "Bench",
                "last_name": "Mark",
                "image_url": None,
                "clerk_updated_at": 1,
            }
            payload = {"type": "user.updated", "data": {"id": "user_bench", "first_name": "Bench"}}
            claim = {
                "source": "clerk",
                "svix_id": "msg_bench",
                "type": "user.updated",
                "clerk_user_id": "user_bench",
                "status": "processed",
                "payload": payload,
            }
            with db.engine.connect() as conn:
                # The statements as built, and as the app runs them (compiled_once)
                upsert, claim_statement = mirror._upsert_statement(unless_email_held=True), inbox._claim_statement()
                upsert_sql = upsert.compile(dialect=conn.dialect)
                claim_sql = claim_statement.compile(dialect=conn.dialect)
                ways = {
                    "mirror upsert, executed directly": lambda: conn.execute(upsert, user),
                    "mirror upsert, compiled_once": lambda: conn.execute(mirror._UPSERT_UNLESS_EMAIL_HELD, user),
                    "mirror upsert, exec_driver_sql (floor)": lambda: conn.exec_driver_sql(
                        upsert_sql.string, {**upsert_sql.params, **user}
                    ),
                    "webhook claim, executed directly": lambda: conn.execute(claim_statement, claim),
                    "webhook claim, compiled_once": lambda: conn.execute(inbox._CLAIM, claim),
                    "webhook claim, exec_driver_sql (floor)": lambda: conn.exec_driver_sql(
                        claim_sql.string, {**claim_sql.params, **claim, "payload": json.dumps(payload), "attempts": 1}
                    ),
                    "SELECT 1 (a round trip)": lambda: conn.execute(text("SELECT 1")),
                }
                print(f"{'per execution, ' + str(args.runs) + ' runs':42} {'CPU ms':>7} {'wall ms':>8}")
                figures = {}
                for name, run in ways.items():
                    figures[name] = per_execution(conn, run, args.runs)
                    print(f"{name:42} {figures[name][0]:7.3f} {figures[name][1]:8.3f}")
            db.engine.dispose()
        saved = sum(
            figures[f"{what}, executed directly"][0] - figures[f"{what}, compiled_once"][0]
            for what in ("mirror upsert", "webhook claim")
        )
        print(f"CPU saved per webhook delivery (claim + upsert) by compiling once: {saved:.2f} ms")
    finally:
        drop()


if __name__ == "__main__":
    main()
