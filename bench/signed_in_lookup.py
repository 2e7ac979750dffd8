"""What the revoked-session check costs a signed-in request (shop/auth/signed_in.py, issue 20): the signed-in
user's SELECT with its `EXISTS` on `revoked_sessions` (as shipped) against the same SELECT without it, rounds
interleaved in one process, app CPU per look-up, with `revoked_sessions` holding --revoked rows. A database of its
own (the embedded PostgreSQL, or BENCH_DATABASE_URL).

    .venv/bin/python bench/signed_in_lookup.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import fresh_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--lookups", type=int, default=2000, help="look-ups a round")
    parser.add_argument("--revoked", type=int, default=1000, help="rows in revoked_sessions")
    args = parser.parse_args()

    import flask_migrate
    from sqlalchemy import bindparam, select, text

    from shop import create_app, mirror
    from shop.auth import signed_in
    from shop.clerk.users import UserSnapshot
    from shop.extensions import db
    from shop.models import User

    url, drop = fresh_database("bench_signed_in_lookup")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench-secret-key-bench-secret-key"})
    users = User.__table__.c
    # The look-up as it was before the check: the same columns, no EXISTS.
    row_alone = select(
        *(users[field.name] for field in fields(signed_in.SignedInUser) if field.name != "session_revoked")
    ).where(users.clerk_id == bindparam("clerk_id"))
    figures: dict[str, list[float]] = {"the row alone (before)": [], "the row and the EXISTS (shipped)": []}
    try:
        with app.app_context():
            flask_migrate.upgrade()
            connection = db.session.connection()
            mirror.apply_snapshot(connection, UserSnapshot.of("user_bench", "bench@example.com", 1, first_name="Bench"))
            connection.execute(
                text(
                    "INSERT INTO revoked_sessions (session_id, clerk_user_id, status, keep_until) SELECT 'sess_' || n,"
                    " 'user_other', 'revoked', now() + interval '1 day' FROM generate_series(1, :n) AS n"
                ),
                {"n": args.revoked},
            )
            db.session.commit()
            connection = db.session.connection()

            def before() -> None:
                row = connection.execute(row_alone, {"clerk_id": "user_bench"}).one()
                signed_in.SignedInUser(**row._mapping)

            def shipped() -> None:
                signed_in.lookup("user_bench", "sess_live")

            for warm_up in (before, shipped):
                for _ in range(500):
                    warm_up()
            for round_number in range(args.rounds):
                pair = [("the row alone (before)", before), ("the row and the EXISTS (shipped)", shipped)]
                for name, look_up in pair if round_number % 2 == 0 else reversed(pair):
                    started = time.process_time()
                    for _ in range(args.lookups):
                        look_up()
                    figures[name].append((time.process_time() - started) / args.lookups * 1e6)
            db.session.rollback()
            db.engine.dispose()
    finally:
        drop()
    print(f"the signed-in user's look-up, app CPU, {args.rounds} interleaved rounds of {args.lookups}:")
    for name, values in figures.items():
        print(f"  {name:34} median {statistics.median(values):6.1f} µs (rounds {min(values):.1f}–{max(values):.1f})")
    before_median, shipped_median = (statistics.median(values) for values in figures.values())
    print(f"  added per signed-in request: {shipped_median - before_median:+.1f} µs")


if __name__ == "__main__":
    main()
