"""The webhook inbox, A/B: Clerk's and Stripe's signed deliveries through this tree and through a
baseline commit, in the same run, with interleaved rounds.

    .venv/bin/python bench/inbox.py --baseline 0369832     # the commit before the shared inbox

What it does:

1. Checks the baseline out into a temporary git worktree. Each side gets its own database on the
   embedded PostgreSQL (`bench_inbox_a`, `bench_inbox_b`; dropped at the end), built with that side's
   own migrations, and its own gunicorn (that side's gunicorn.conf.py and wsgi.py, production mode,
   this venv), both running for the whole run.
2. Seeds each database through SQL alike: a shopper, a product, and one pending order per Stripe
   delivery to come, each with its Checkout Session id (and, where the schema has it, the
   `checkout_sessions` row the order would have written).
3. Signs every delivery before any timing: distinct Clerk `user.updated` events (Clerk's example
   payload, svix's own `Webhook.sign`, increasing `updated_at` per user) and distinct Stripe
   `checkout.session.completed` events, one per pending order (the stripe library's own signature).
4. Rounds alternate the order of the sides (ABAB, BABA, …); in each, every side receives one batch of
   Clerk deliveries and one of Stripe deliveries from SENDERS keep-alive connections (Python's
   http.client, one thread each, one request in flight). Every answer must be 200 `processed`.
5. Prints each round's deliveries per second and the medians per side and source, with B/A.

The Python senders cost CPU that the servers then lack (bench/webhooks.py uses wrk for absolute
figures); both sides pay the same, which is what an A/B needs.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from svix.webhooks import Webhook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    STRIPE_SECRET,
    free_port,
    fresh_database,
    seed_pending_orders,
    start_gunicorn,
    stripe_completion,
)

CLERK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105  (the test suite's; any whsec_ works)
TEMPLATE = ROOT / "tests" / "vectors" / "openapi-specs_webhook_user_updated.json"
RESULTS = ROOT / "bench" / "results"
SENDERS = 4


@dataclass
class Side:
    label: str
    tree: Path
    database: str
    url: str = ""
    port: int = 0
    server: subprocess.Popen | None = None


def _settings(side: Side) -> dict[str, str]:
    return {
        "DATABASE_URL": side.url,
        "SECRET_KEY": "bench-secret-key",
        "CLERK_WEBHOOK_SECRET": CLERK_SECRET,
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "STRIPE_SECRET_KEY": "sk_test_bench_never_called",
        "PYTHONPATH": str(side.tree),
    }


def migrate(side: Side) -> None:
    """That side's own migrations, run by that side's own code."""
    code = (
        "import flask_migrate; from shop import create_app; "
        "app = create_app(); app.app_context().push(); flask_migrate.upgrade()"
    )
    env = {**_settings(side), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], cwd=side.tree, env=env, check=True, capture_output=True)


def clerk_bodies(count: int, offset: int) -> list[tuple[bytes, dict[str, str]]]:
    template, signer, signed = json.loads(TEMPLATE.read_text()), Webhook(CLERK_SECRET), []
    for n in range(offset, offset + count):
        event = copy.deepcopy(template)
        user = n % 500
        email_id = f"idn_bench{user:06d}"
        event["data"].update(
            id=f"user_bench{user:06d}",
            first_name=f"First{n}",
            updated_at=1_800_000_000_000 + n,
            primary_email_address_id=email_id,
            email_addresses=[{"id": email_id, "email_address": f"bench{user:06d}@example.com"}],
        )
        body = json.dumps(event)
        svix_id = f"msg_{uuid.uuid4().hex}"
        stamp = int(time.time())
        headers = {
            "svix-id": svix_id,
            "svix-timestamp": str(stamp),
            "svix-signature": signer.sign(svix_id, _utc(stamp), body),
            "Content-Type": "application/json",
        }
        signed.append((body.encode(), headers))
    return signed


def _utc(stamp: int):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(stamp, UTC)


def stripe_bodies(count: int, offset: int) -> list[tuple[bytes, dict[str, str]]]:
    signed = []
    for order in range(offset + 1, offset + count + 1):
        _, body, header = stripe_completion(order)
        signed.append((body.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}))
    return signed


def send(port: int, path: str, deliveries: list[tuple[bytes, dict[str, str]]]) -> tuple[float, list[float]]:
    """All deliveries from SENDERS connections; deliveries per second, and each one's latency in ms."""
    shares = [deliveries[i::SENDERS] for i in range(SENDERS)]
    latencies: list[float] = []
    problems: list[str] = []
    lock = threading.Lock()

    def sender(share: list[tuple[bytes, dict[str, str]]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for body, headers in share:
            started = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            answer = conn.getresponse()
            text = answer.read()
            mine.append((time.perf_counter() - started) * 1000)
            if answer.status != 200 or b"processed" not in text:
                with lock:
                    problems.append(f"{answer.status} {text[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=sender, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if problems:
        sys.exit(f"{len(problems)} deliveries were not processed, e.g. {problems[0]}")
    return len(deliveries) / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD~1", help="the commit to compare this tree with (side A)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=400, help="deliveries per source, side and round")
    args = parser.parse_args()

    RESULTS.mkdir(exist_ok=True)
    worktree = Path(tempfile.mkdtemp(prefix="bench-inbox-")) / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], cwd=ROOT, check=True)
    sides = [Side("A", worktree, "bench_inbox_a"), Side("B", ROOT, "bench_inbox_b")]
    drops = []
    try:
        total = args.rounds * args.batch + 50
        for side in sides:
            side.url, drop = fresh_database(side.database)
            drops.append(drop)
            migrate(side)
            seed_pending_orders(side.url, total)
            side.port = free_port()
            log = RESULTS / f"inbox-gunicorn-{side.label}.log"
            side.server = start_gunicorn(_settings(side), side.port, log, root=side.tree)
        print(f"A = {args.baseline} ({worktree}), B = this tree; {args.rounds} rounds of {args.batch} per source")
        figures: dict[tuple[str, str], list[float]] = {}
        p50s: dict[tuple[str, str], list[float]] = {}
        warm = 50
        for side in sides:  # warm-up: connections, caches, the first compile of each statement
            send(side.port, "/api/webhooks/clerk", clerk_bodies(warm, 10_000_000))
            send(side.port, "/api/webhooks/stripe", stripe_bodies(warm, total - warm))
        for round_number in range(args.rounds):
            order = sides if round_number % 2 == 0 else sides[::-1]
            offset = round_number * args.batch
            line = [f"round {round_number + 1}"]
            for side in order:
                for source, path, bodies in (
                    ("clerk", "/api/webhooks/clerk", clerk_bodies(args.batch, offset)),
                    ("stripe", "/api/webhooks/stripe", stripe_bodies(args.batch, offset)),
                ):
                    rate, latencies = send(side.port, path, bodies)
                    figures.setdefault((side.label, source), []).append(rate)
                    p50s.setdefault((side.label, source), []).append(statistics.median(latencies))
                    line.append(f"{side.label} {source} {rate:6.0f}/s")
            print("  ".join(line), flush=True)
        print()
        for source in ("clerk", "stripe"):
            a, b = (statistics.median(figures[(label, source)]) for label in ("A", "B"))
            pa, pb = (statistics.median(p50s[(label, source)]) for label in ("A", "B"))
            print(
                f"{source:6}  median A {a:6.0f}/s (p50 {pa:.1f} ms)   B {b:6.0f}/s (p50 {pb:.1f} ms)   B/A {b / a:.3f}"
            )
    finally:
        for side in sides:
            if side.server is not None:
                side.server.terminate()
                side.server.wait(timeout=30)
        for drop in drops:
            drop()
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
