"""Does ending a read-only request with COMMIT (shop/read_only_commit.py) pay? The catalogue's two queries,
1,000 requests a round, each request ended with COMMIT or with ROLLBACK, rounds interleaved, in one process
against a database of its own (the embedded PostgreSQL, or BENCH_DATABASE_URL), with psycopg's prepared
statements on (a direct connection) or off (`--pooled`: what the app does behind a transaction-mode pooler).

    .venv/bin/python bench/read_only_commit.py            # direct
    .venv/bin/python bench/read_only_commit.py --pooled   # prepared statements off
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import fresh_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pooled", action="store_true", help="psycopg's prepared statements off, as behind a pooler")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()

    import flask_migrate

    from shop import create_app
    from shop.extensions import db
    from shop.store import catalogue, seed

    url, drop = fresh_database("bench_read_only_commit")
    options = {"SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"prepare_threshold": None}}} if args.pooled else {}
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench-secret-key-bench-secret-key", **options})
    try:
        with app.app_context():
            flask_migrate.upgrade()
            seed.seed(reset=False)
            figures: dict[str, list[float]] = {"commit": [], "rollback": []}
            for round_number in range(args.rounds):
                modes = ("commit", "rollback") if round_number % 2 == 0 else ("rollback", "commit")
                for mode in modes:
                    end = db.session.commit if mode == "commit" else db.session.rollback
                    started = time.perf_counter()
                    for _ in range(args.requests):
                        catalogue.search("", 1, cart_of=None)
                        catalogue.search("mug", 1, cart_of=None)
                        end()
                    figures[mode].append((time.perf_counter() - started) / args.requests * 1000)
            db.engine.dispose()
    finally:
        drop()
    print("prepared statements off (as behind a pooler)" if args.pooled else "direct connection")
    for mode, values in figures.items():
        print(
            f"  ended with {mode.upper():8} median {statistics.median(values):.3f} ms a request "
            f"(rounds {min(values):.3f}–{max(values):.3f})"
        )


if __name__ == "__main__":
    main()
