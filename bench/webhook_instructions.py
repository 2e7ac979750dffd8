"""Instructions per Clerk webhook delivery, counted by valgrind's callgrind: the same figure whatever else
the machine is doing, so one change can be compared with the last without interleaved rounds.

    .venv/bin/python bench/webhook_instructions.py        # about 3 minutes; needs valgrind (apt-get install valgrind)

It signs distinct `user.updated` deliveries (bench/webhooks.py's), then runs itself under callgrind and
calls each WSGI app below in-process, batch after batch, resetting the count before each batch and
reading it after (callgrind_control -z / -d). The database server's work is not counted (another
process), nor gunicorn's: this is the app's own CPU, which is where the shop and the floor differ.

- `floor`: bench/floor_app.py, the raw-psycopg handler bench/webhooks.py --floor measures.
- `floor in Flask`: the same handler as the one route of a bare Flask app: what Flask's request cycle
  alone adds.
- `shop`: the shop's app (create_app, production settings), POST /api/webhooks/clerk.
- `shop, floor's SQL`: the shop's request with the inbox's transaction (claim and mirror upsert
  through SQLAlchemy, shop.webhooks.inbox.process_or_record_failure) swapped for the floor's two
  statements on a raw psycopg connection. Not a product: it skips the mirror's rules. It bounds what
  any rewrite of the database layer could save.

Figures and what they say: bench/README.md, "Against the floor".
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import libpq  # noqa: E402
from bench.webhooks import SECRET, WEBHOOK_PATH, Deliveries, _app_env, prepare_database  # noqa: E402

UNDER_CALLGRIND = "BENCH_UNDER_CALLGRIND"
VARIANTS = ("floor", "floor in Flask", "shop", "shop, floor's SQL")


def environ_for(delivery: tuple[str, str, str, bytes]) -> dict[str, Any]:
    svix_id, timestamp, signature, body = delivery
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": WEBHOOK_PATH,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_SVIX_ID": svix_id,
        "HTTP_SVIX_TIMESTAMP": timestamp,
        "HTTP_SVIX_SIGNATURE": signature,
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def signed_deliveries(count: int) -> Iterable[tuple[str, str, str, bytes]]:
    """Distinct deliveries, newer than any an earlier run left in the database."""
    from svix.webhooks import Webhook

    webhook, now = Webhook(SECRET), datetime.now(UTC)
    plan = Deliveries(users=2000, senders=1, next_updated_at=int(time.time() * 1000) * 10)
    for n in range(count):
        plan.next_updated_at += 1
        body = plan.payload(n % 2000, plan.next_updated_at)
        svix_id = f"msg_instr_{os.getpid()}_{n:07d}"
        yield svix_id, str(int(now.timestamp())), webhook.sign(svix_id, now, body), body.encode()


def apps(database_url: str) -> dict[str, Callable[..., Any]]:
    import flask
    import psycopg

    from bench import floor_app
    from shop import create_app
    from shop.webhooks import inbox

    bare = flask.Flask("floor_in_flask")

    @bare.post(WEBHOOK_PATH)
    def floor_in_flask() -> Any:
        return floor_app.app(flask.request.environ, lambda status, headers, exc_info=None: None)[0]

    shop = create_app(_app_env(database_url))
    through_sqlalchemy = inbox.process_or_record_failure
    raw = psycopg.connect(libpq(database_url))

    def floors_sql(source: Any, event: Any, payload: Any) -> inbox.Outcome:
        user, email = payload["data"], event.data.snapshot.email
        with raw.transaction():
            claimed = raw.execute(
                floor_app._CLAIM, (event.id, event.type, user["id"], psycopg.types.json.Jsonb(payload))
            ).fetchone()
            if claimed is None:
                return inbox.Outcome.DUPLICATE
            values = (user["id"], email, email.lower(), user["first_name"], user["last_name"], user["image_url"])
            raw.execute(floor_app._UPSERT, (*values, user["updated_at"]))
        return inbox.Outcome.PROCESSED

    def shop_with_floors_sql(environ: dict[str, Any], start_response: Any) -> Any:
        inbox.process_or_record_failure = floors_sql  # type: ignore[assignment]
        try:
            return shop(environ, start_response)
        finally:
            inbox.process_or_record_failure = through_sqlalchemy

    return {"floor": floor_app.app, "floor in Flask": bare, "shop": shop, "shop, floor's SQL": shop_with_floors_sql}


def measure(database_url: str, rounds: int, batch: int, dumps: Path) -> None:
    """Under callgrind: one dump per variant and round (round 0 warms up), variants in alternating order."""
    import logging

    os.environ.update(CLERK_WEBHOOK_SECRET=SECRET, FLOOR_DATABASE_URL=libpq(database_url))
    runners = apps(database_url)
    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # type: ignore[attr-defined]  # noqa: SIM115
    deliveries = signed_deliveries((rounds + 1) * batch * len(VARIANTS))
    statuses: set[str] = set()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses.add(status)

    me = str(os.getpid())
    for round_number in range(rounds + 1):
        order = VARIANTS if round_number % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            environs = [environ_for(next(deliveries)) for _ in range(batch)]
            subprocess.run(["callgrind_control", "-z", me], check=True, capture_output=True)
            for environ in environs:
                for _ in runners[variant](environ, start_response):
                    pass
            label = f"variant{VARIANTS.index(variant)}-round{round_number}"
            subprocess.run(["callgrind_control", f"--dump={label}", me], check=True, capture_output=True)
    if statuses != {"200 OK"}:
        sys.exit(f"a delivery was not answered 200: {sorted(statuses)}")


def report(dumps: Path, rounds: int, batch: int) -> None:
    counts: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for dump in dumps.glob("callgrind.out.*.*"):
        text = dump.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: .*variant(\d+)-round(\d+)\s*$", text, re.M)
        total = re.search(r"^summary: (\d+)", text, re.M)
        if trigger and total and int(trigger.group(2)) > 0:  # round 0 warms up
            counts[VARIANTS[int(trigger.group(1))]].append(int(total.group(1)) / batch)
    floor = statistics.median(counts["floor"])
    print(f"instructions per delivery (median of {rounds} batches of {batch}; spread in brackets)")
    for variant in VARIANTS:
        median = statistics.median(counts[variant])
        spread = f"{min(counts[variant]) / 1e6:.2f}–{max(counts[variant]) / 1e6:.2f}"
        print(f"  {variant:20s} {median / 1e6:6.2f} M  ({spread})  {median / floor:5.2f}× the floor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=40, help="deliveries per variant and round")
    args = parser.parse_args()
    if os.environ.get(UNDER_CALLGRIND):
        measure(os.environ[UNDER_CALLGRIND], args.rounds, args.batch, Path.cwd())
        return
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed: apt-get install -y valgrind")
    url, drop = prepare_database("bench_webhook_instructions")
    try:
        with tempfile.TemporaryDirectory() as dumps:
            command = ["valgrind", "--tool=callgrind", "-q", sys.executable, __file__, *sys.argv[1:]]
            env = {**os.environ, UNDER_CALLGRIND: url, "PYTHONMALLOC": "malloc"}
            subprocess.run(command, cwd=dumps, env=env, check=True)
            report(Path(dumps), args.rounds, args.batch)
    finally:
        drop()


if __name__ == "__main__":
    main()
