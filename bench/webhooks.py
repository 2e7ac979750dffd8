"""Webhook throughput: signed, distinct `user.updated` deliveries through gunicorn, beside a trivial route.

    .venv/bin/python bench/webhooks.py            # or: make bench-webhooks

What it does:

1. Creates its own database, `bench_webhooks` on the embedded PostgreSQL (dropped again at the
   end; --keep-database keeps it), or uses BENCH_DATABASE_URL, whose `public` schema it EMPTIES
   first. Builds the schema with the committed migrations.
2. Starts gunicorn with the committed gunicorn.conf.py on 127.0.0.1 (a free port), in production
   mode, with its access log and the app's log in bench/results/webhooks-gunicorn.log.
3. For every round: signs, before any timing, one distinct `user.updated` per request (Clerk's
   example payload from tests/vectors with each user's id, e-mail and names, signed by svix's own
   `Webhook.sign`); each of the 8 senders owns its users and sends their updates with increasing
   `updated_at`. Then drives POST /api/webhooks/clerk and GET /api/health (the trivial route:
   Flask routing plus one `SELECT 1`, the cheapest route the app has) the same way: 8 keep-alive
   connections, each with one request in flight, for a fixed duration, after a warm-up.
4. Checks afterwards that every delivery answered 200 has exactly one `processed` row in
   `webhook_events`, that nothing else was recorded, and that `users` holds, for every user, the
   newest update that was processed.
5. Then the Stripe case (--stripe-rounds, 3 by default): signed `checkout.session.completed` events,
   each paying one of the pending orders seeded before gunicorn started (bench.harness), through
   POST /api/webhooks/stripe the same way; afterwards every 200 must have its processed row and as many
   orders must be paid.
6. Prints one line per round and a summary: best round, and the spread over the rounds.

The load generator is wrk (C, epoll) driven by a Lua script that cycles through the pre-signed
requests, one file per connection. Measured against /api/health at about 1,650 requests/s, wrk used
0.07 cores (about 40 µs per request) and a compact Python client (http.client keep-alive
connections, one thread per sender) 0.22 cores (about 150 µs per request); with 2 cores shared by
gunicorn and PostgreSQL, whatever the sender takes is missing from what it measures. The CPU that
wrk, gunicorn and the PostgreSQL backends used is printed beside each figure, with what the rest
of the machine used ("other"): a round in which "other" is high was disturbed.
Install wrk with `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk` (macOS).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import runpy
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url
from svix.webhooks import Webhook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    STRIPE_SECRET,
    free_port,
    fresh_database,
    libpq,
    seed_pending_orders,
    start_gunicorn,
    stripe_completion,
)

WEBHOOK_PATH = "/api/webhooks/clerk"
STRIPE_PATH = "/api/webhooks/stripe"
TRIVIAL_PATH = "/api/health"
DATABASE = "bench_webhooks"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105  (the test suite's; any whsec_ works)
TEMPLATE = ROOT / "tests" / "vectors" / "openapi-specs_webhook_user_updated.json"
RESULTS = ROOT / "bench" / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# One wrk thread per connection, one request in flight: a thread's answers come in the order of its
# requests, so each status can be matched to the delivery it answers.
WRK_SCRIPT = r"""
local threads, next_id = {}, 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1] .. "/" .. args[2] .. "-" .. id .. ".req", "rb"))
  local data = f:read("*a")
  f:close()
  reqs, pos = {}, 1
  while pos <= #data do  -- "<length>\n<raw request>" records
    local nl = string.find(data, "\n", pos, true)
    local len = tonumber(string.sub(data, pos, nl - 1))
    reqs[#reqs + 1] = string.sub(data, nl + 1, nl + len)
    pos = nl + len + 1
  end
  sent, answered, codes = 0, {}, {}
end

-- wrk calls request() once more than it sends, on the first thread, to inspect the request; so
-- each answer is recorded with the number of the request it answers, not by position.
function request()
  sent = sent + 1
  return reqs[(sent - 1) % #reqs + 1]
end

function response(status, headers, body)
  answered[#answered + 1] = sent
  codes[#codes + 1] = status
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"duration_us": %d, "requests": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, "threads": [',
    summary.duration, summary.requests, latency:percentile(50), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
  for i, thread in ipairs(threads) do
    local got, numbers = thread:get("codes"), thread:get("answered")
    local parts = {}
    for j = 1, #got do parts[j] = numbers[j] .. "," .. got[j] end
    io.write(string.format('%s{"id": %d, "sent": %d, "answers": [%s]}', i > 1 and ", " or "",
      thread:get("id"), thread:get("sent"), table.concat(parts, ",")))
  end
  io.write("]}\n")
end
"""


# --------------------------------------------------------------------------- the database


def prepare_database(name: str = DATABASE) -> tuple[str, Callable[[], None]]:
    """A SQLAlchemy URL to an empty database with the schema, and how to drop it afterwards."""
    url, drop = fresh_database(name)
    import flask_migrate

    from shop import create_app
    from shop.extensions import db

    app = create_app(_app_env(url))
    with app.app_context():
        flask_migrate.upgrade()  # the committed migrations, as `flask db upgrade` runs them
        db.engine.dispose()
    return url, drop


def _app_env(database_url: str) -> dict[str, str]:
    # Production mode (no FLASK_DEBUG), as under a real deployment.
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key",
        "CLERK_WEBHOOK_SECRET": SECRET,
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "STRIPE_SECRET_KEY": "sk_test_bench_never_called",  # a completion calls no Stripe API
    }


# --------------------------------------------------------------------------- the deliveries


@dataclass(frozen=True, slots=True)
class Delivery:
    svix_id: str
    user: int
    updated_at: int


@dataclass
class Deliveries:
    """Every delivery of the run, and what the mirror must end up holding."""

    users: int
    senders: int
    next_updated_at: int = 1_800_000_000_000
    sequence: int = 0
    template: dict = field(default_factory=lambda: json.loads(TEMPLATE.read_text()))

    def user_fields(self, user: int, updated_at: int) -> dict[str, str]:
        return {
            "clerk_id": f"user_bench{user:06d}",
            "email": f"bench.user{user:06d}@example.com",
            "first_name": f"First{updated_at % 1_000_000}",
            "last_name": f"Last{user}",
            "image_url": f"https://img.clerk.com/bench/{user}/{updated_at}",
        }

    def payload(self, user: int, updated_at: int) -> str:
        event = copy.deepcopy(self.template)
        fields = self.user_fields(user, updated_at)
        data = event["data"]
        email_id = f"idn_bench{user:06d}"
        data.update(
            id=fields["clerk_id"],
            first_name=fields["first_name"],
            last_name=fields["last_name"],
            image_url=fields["image_url"],
            profile_image_url=fields["image_url"],
            primary_email_address_id=email_id,
            email_addresses=[
                {
                    "object": "email_address",
                    "id": email_id,
                    "email_address": fields["email"],
                    "reserved": False,
                    "linked_to": [],
                    "verification": {"status": "verified", "strategy": "email_code", "attempts": 1},
                    "created_at": 1_716_883_200_000,
                    "updated_at": updated_at,
                }
            ],
            updated_at=updated_at,
            last_active_at=updated_at,
        )
        event["timestamp"] = updated_at
        return json.dumps(event, separators=(",", ":"))

    def write(self, directory: Path, phase: str, per_sender: int, host: str) -> list[list[Delivery]]:
        """Sign `per_sender` deliveries for each sender into `<phase>-<sender>.req`; return them."""
        webhook, now = Webhook(SECRET), datetime.now(UTC)
        timestamp = str(int(now.timestamp()))
        plan: list[list[Delivery]] = []
        for sender in range(self.senders):
            own_users = list(range(sender, self.users, self.senders))  # no user is shared between senders
            sent: list[Delivery] = []
            with open(directory / f"{phase}-{sender}.req", "wb") as out:
                for n in range(per_sender):
                    self.sequence += 1
                    self.next_updated_at += 1
                    user = own_users[n % len(own_users)]
                    svix_id = f"msg_bench_{self.sequence:09d}"
                    body = self.payload(user, self.next_updated_at)
                    request = (
                        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                        f"svix-id: {svix_id}\r\nsvix-timestamp: {timestamp}\r\n"
                        f"svix-signature: {webhook.sign(svix_id, now, body)}\r\n"
                        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
                    ).encode()
                    out.write(b"%d\n%s" % (len(request), request))
                    sent.append(Delivery(svix_id, user, self.next_updated_at))
            plan.append(sent)
        return plan


@dataclass
class StripeDeliveries:
    """Signed `checkout.session.completed` events, each paying the next of the pending orders seeded
    for the run (bench.harness.seed_pending_orders): every one has an effect (pending to paid, the
    "order confirmed" e-mail into the outbox)."""

    senders: int
    next_order: int = 0

    def write(self, directory: Path, phase: str, per_sender: int, host: str) -> list[list[Delivery]]:
        plan: list[list[Delivery]] = []
        for sender in range(self.senders):
            sent: list[Delivery] = []
            with open(directory / f"{phase}-{sender}.req", "wb") as out:
                for _ in range(per_sender):
                    self.next_order += 1
                    event_id, body, signature = stripe_completion(self.next_order)
                    request = (
                        f"POST {STRIPE_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                        f"Stripe-Signature: {signature}\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}"
                    ).encode()
                    out.write(b"%d\n%s" % (len(request), request))
                    sent.append(Delivery(event_id, self.next_order, 0))
            plan.append(sent)
        return plan


def check_stripe(database_url: str, checker: Checker) -> list[str]:
    """Every Stripe delivery answered 200 has one processed row, and as many orders are paid as rows say."""
    with psycopg.connect(libpq(database_url)) as conn:
        rows = dict(conn.execute("SELECT svix_id, status FROM webhook_events WHERE source = 'stripe'").fetchall())
        paid = conn.execute("SELECT count(*) FROM orders WHERE payment_status = 'paid'").fetchone()[0]
    problems = []
    if any(rows.get(event_id) != "processed" for event_id in checker.ok):
        problems.append("Stripe deliveries answered 200 without a processed row")
    if paid != sum(status == "processed" for status in rows.values()):
        problems.append(f"{paid} orders paid for {len(rows)} processed Stripe events")
    checker.summary = f"{len(checker.ok)} Stripe deliveries answered 200, {paid} orders paid"
    return problems


@dataclass
class Floor:
    target: Target
    deliveries: Deliveries
    server: subprocess.Popen
    drop: Callable[[], None]


def start_floor(args: argparse.Namespace, extra_args: list[str]) -> Floor:
    """bench/floor_app.py under the same gunicorn settings, on a database of its own migrated the same way."""
    url, drop = prepare_database(f"{DATABASE}_floor")
    port = free_port()
    settings = {**_app_env(url), "FLOOR_DATABASE_URL": libpq(url)}
    log_path = RESULTS / "webhooks-floor-gunicorn.log"
    server = start_gunicorn(settings, port, log_path, extra_args, app="bench.floor_app:app")
    target = Target(f"127.0.0.1:{port}", server.pid, make_url(url).database)
    return Floor(target, Deliveries(users=args.users, senders=args.senders), server, drop)


def write_trivial(directory: Path, phase: str, senders: int, host: str) -> None:
    request = f"GET {TRIVIAL_PATH} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    for sender in range(senders):
        (directory / f"{phase}-{sender}.req").write_bytes(b"%d\n%s" % (len(request), request))


# --------------------------------------------------------------------------- CPU accounting


def _proc_stat(pid: int) -> tuple[int, int, str, str]:
    """(ppid, cpu ticks, comm, cmdline) of a process."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return int(fields[1]), int(fields[11]) + int(fields[12]), comm, cmdline


def cpu_sample(gunicorn_pid: int, database: str) -> dict[str, float]:
    """CPU seconds used so far by gunicorn (master and workers), the backends serving `database`,
    and the whole machine (PostgreSQL's background processes count as the machine's)."""
    server = backends = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ppid, ticks, comm, cmdline = _proc_stat(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if int(entry.name) == gunicorn_pid or ppid == gunicorn_pid:
            server += ticks
        elif comm == "postgres" and f" {database} " in cmdline:
            backends += ticks
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    busy = sum(values) - values[3] - values[4]  # everything but idle and iowait
    return {"server": server / CLOCK_TICKS, "postgres": backends / CLOCK_TICKS, "machine": busy / CLOCK_TICKS}


# --------------------------------------------------------------------------- measuring


@dataclass
class Result:
    label: str
    rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    answered: int
    non_200: int
    socket_errors: int
    cpu: dict[str, float]  # cores used on average: server, postgres, wrk, other
    threads: list[dict]


@dataclass(frozen=True)
class Target:
    host: str  # 127.0.0.1:port
    gunicorn_pid: int
    database: str  # whose backends count as "postgres"


def run_wrk(target: Target, path: str, directory: Path, phase: str, senders: int, duration: int) -> Result:
    gunicorn_pid, database = target.gunicorn_pid, target.database
    before, children = cpu_sample(gunicorn_pid, database), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    completed = subprocess.run(
        ["wrk", f"-t{senders}", f"-c{senders}", f"-d{duration}s", "--timeout", "10s", "-s",
         str(directory / "bench.lua"), f"http://{target.host}{path}", "--", str(directory), phase],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    after, children_after = cpu_sample(gunicorn_pid, database), resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        sys.exit(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    report = json.loads(lines[-1])
    wrk_cpu = (children_after.ru_utime + children_after.ru_stime) - (children.ru_utime + children.ru_stime)
    server, postgres = after["server"] - before["server"], after["postgres"] - before["postgres"]
    machine = after["machine"] - before["machine"]
    for thread in report["threads"]:  # [number, status, number, status…] → [(number, status)…]
        flat = thread.pop("answers")
        thread["answers"] = list(zip(flat[::2], flat[1::2], strict=True))
    codes = [code for thread in report["threads"] for _, code in thread["answers"]]
    errors = report["errors"]
    return Result(
        label=phase,
        rate=report["requests"] / (report["duration_us"] / 1e6),
        p50_ms=report["p50_us"] / 1000,
        p99_ms=report["p99_us"] / 1000,
        max_ms=report["max_us"] / 1000,
        answered=len(codes),
        non_200=sum(1 for code in codes if code != 200),
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        cpu={
            "server": server / elapsed,
            "postgres": postgres / elapsed,
            "wrk": wrk_cpu / elapsed,
            "other": max(0.0, machine - server - postgres - wrk_cpu) / elapsed,
        },
        threads=report["threads"],
    )


# --------------------------------------------------------------------------- checking


@dataclass
class Checker:
    database_url: str
    deliveries: Deliveries
    sent: dict[str, Delivery] = field(default_factory=dict)  # every delivery handed to wrk
    ok: set[str] = field(default_factory=set)  # answered 200

    def add(self, plan: list[list[Delivery]], result: Result) -> None:
        for thread in result.threads:
            own = plan[thread["id"]]
            if thread["sent"] > len(own):
                sys.exit(f"sender {thread['id']} ran out of signed deliveries: raise --max-rate")
            for delivery in own[: thread["sent"]]:
                self.sent[delivery.svix_id] = delivery
            for number, code in thread["answers"]:
                if code == 200:
                    self.ok.add(own[number - 1].svix_id)

    def check(self) -> list[str]:
        problems = []
        with psycopg.connect(libpq(self.database_url)) as conn:
            events = conn.execute(
                "SELECT svix_id, status, count(*) FROM webhook_events WHERE source = 'clerk' GROUP BY 1, 2"
            ).fetchall()
            users = {
                row[0]: row[1:]
                for row in conn.execute(
                    "SELECT clerk_id, email, first_name, last_name, image_url, clerk_updated_at, deleted_at FROM users "
                    "WHERE clerk_id <> 'user_bench_buyer'"  # the Stripe case's shopper
                )
            }
        rows: dict[str, list[tuple[str, int]]] = {}
        for svix_id, status, count in events:
            rows.setdefault(svix_id, []).append((status, count))
        missing = [s for s in self.ok if rows.get(s) != [("processed", 1)]]
        if missing:
            problems.append(f"{len(missing)} deliveries answered 200 without exactly one processed row")
        strangers = [s for s in rows if s not in self.sent]
        if strangers:
            problems.append(f"{len(strangers)} webhook_events rows for deliveries never sent")
        not_processed = [s for s, found in rows.items() if found != [("processed", 1)]]
        if not_processed:
            problems.append(f"{len(not_processed)} webhook_events rows not 'processed' (or not unique)")
        # The newest processed update of each user must be what `users` holds. Answers cut off by
        # the end of a round may still have been processed: the log decides, not the answer.
        newest: dict[int, int] = {}
        for svix_id, found in rows.items():
            delivery = self.sent.get(svix_id)
            if delivery and found == [("processed", 1)]:
                newest[delivery.user] = max(newest.get(delivery.user, 0), delivery.updated_at)
        wrong = 0
        for user, updated_at in newest.items():
            f = self.deliveries.user_fields(user, updated_at)
            expected = (f["email"], f["first_name"], f["last_name"], f["image_url"], updated_at, None)
            if users.get(f["clerk_id"]) != expected:
                wrong += 1
        if wrong:
            problems.append(f"{wrong} users do not hold their newest processed update")
        if len(users) != len(newest):
            problems.append(f"{len(users)} users in the table, {len(newest)} expected")
        self.summary = (
            f"{len(self.ok)} deliveries answered 200, {len(rows)} webhook_events rows, "
            f"{len(newest)} users checked against their newest update"
        )
        return problems


# --------------------------------------------------------------------------- gunicorn


def effective_config(overrides: dict[str, str]) -> str:
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    workers = overrides.get("workers", settings["workers"])
    kind = overrides.get("worker-class", settings["worker_class"])
    threads = overrides.get("threads", settings.get("threads", 1))
    text = f"gunicorn.conf.py: {workers} {kind} workers"
    return text + (f" × {threads} threads" if kind == "gthread" else "")


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per route and round")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per route")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (each: webhooks, then the trivial route)")
    parser.add_argument("--senders", type=int, default=8, help="concurrent connections")
    parser.add_argument("--users", type=int, default=2000, help="distinct Clerk users the updates go to")
    parser.add_argument("--max-rate", type=int, default=5000, help="deliveries/s signed for in advance")
    parser.add_argument("--workers", help="override gunicorn.conf.py's workers")
    parser.add_argument("--worker-class", help="override gunicorn.conf.py's worker_class (sync, gthread)")
    parser.add_argument("--threads", help="override gunicorn.conf.py's threads")
    parser.add_argument("--keep-database", action="store_true", help=f"keep {DATABASE} afterwards")
    parser.add_argument(
        "--floor", action="store_true", help="also drive bench/floor_app.py (raw psycopg), rounds interleaved"
    )
    parser.add_argument("--stripe-rounds", type=int, default=3, help="rounds of Stripe completions (0: none)")
    parser.add_argument("--stripe-max-rate", type=int, default=1500, help="Stripe deliveries/s signed in advance")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        sys.exit("bench/webhooks.py needs wrk: `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk` (macOS).")
    overrides = {
        name: str(value)
        for name, value in (("workers", args.workers), ("worker-class", args.worker_class), ("threads", args.threads))
        if value
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS / "webhooks-gunicorn.log"

    print(f"machine: {os.cpu_count()} cores, {_cpu_model()}, load average {os.getloadavg()[0]:.2f}")
    print(effective_config(overrides))
    database_url, drop = prepare_database()
    stripe_per_sender = math.ceil(args.stripe_max_rate * args.duration / args.senders) + 10
    if args.stripe_rounds:
        stripe_warm = math.ceil(args.stripe_max_rate * args.warmup / args.senders) + 10
        seed_pending_orders(database_url, args.senders * (stripe_warm + stripe_per_sender * args.stripe_rounds))
    port = free_port()
    host = f"127.0.0.1:{port}"
    extra_args = [arg for name, value in overrides.items() for arg in (f"--{name}", value)]
    floor = start_floor(args, extra_args) if args.floor else None  # first: a floor that fails leaves nothing running
    server = start_gunicorn(_app_env(database_url), port, log_path, extra_args)
    target = Target(host, server.pid, make_url(database_url).database)
    deliveries = Deliveries(users=args.users, senders=args.senders)
    floor_rows: list[tuple[Result, Result]] = []
    checker = Checker(database_url, deliveries)
    stripe_checker = Checker(database_url, deliveries)
    rows: list[tuple[Result, Result]] = []
    stripe_rows: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
            directory = Path(tmp)
            (directory / "bench.lua").write_text(WRK_SCRIPT)
            write_trivial(directory, "trivial", args.senders, host)
            per_sender = lambda seconds: math.ceil(args.max_rate * seconds / args.senders) + 10  # noqa: E731

            plan = deliveries.write(directory, "warmup", per_sender(args.warmup), host)
            warm = run_wrk(target, WEBHOOK_PATH, directory, "warmup", args.senders, args.warmup)
            checker.add(plan, warm)
            run_wrk(target, TRIVIAL_PATH, directory, "trivial", args.senders, args.warmup)

            print(f"\n{args.senders} concurrent senders, {args.duration:g} s per route and round, after warm-up")
            header = (
                f"{'round':<6}{'route':<26}{'req/s':>7}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'non-200':>8}"
                f"{'errors':>7}{'CPU ms/req':>11}   cores used: server / postgres / wrk / other"
            )
            print(header)
            if floor is not None:
                floor.deliveries.write(directory, "floor-warmup", per_sender(args.warmup), floor.target.host)
                run_wrk(floor.target, WEBHOOK_PATH, directory, "floor-warmup", args.senders, args.warmup)
            for round_number in range(1, args.rounds + 1):

                def shop_round(n: int = round_number) -> None:
                    plan = deliveries.write(directory, f"round{n}", per_sender(args.duration), host)
                    hooks = run_wrk(target, WEBHOOK_PATH, directory, f"round{n}", args.senders, args.duration)
                    checker.add(plan, hooks)
                    trivial = run_wrk(target, TRIVIAL_PATH, directory, "trivial", args.senders, args.duration)
                    rows.append((hooks, trivial))
                    for label, result in (("POST " + WEBHOOK_PATH, hooks), ("GET " + TRIVIAL_PATH, trivial)):
                        print(_line(str(n), label, result))

                def floor_round(n: int = round_number) -> None:
                    assert floor is not None
                    phase = f"floor{n}"
                    floor.deliveries.write(directory, phase, per_sender(args.duration), floor.target.host)
                    hooks = run_wrk(floor.target, WEBHOOK_PATH, directory, phase, args.senders, args.duration)
                    floor_rows.append((hooks, hooks))
                    print(_line(str(n), "floor (raw psycopg)", hooks))

                # Interleaved: the shop first in odd rounds, the floor first in even ones.
                steps = [shop_round] if floor is None else [shop_round, floor_round]
                for step in steps if round_number % 2 else steps[::-1]:
                    step()
            if args.stripe_rounds:
                stripe = StripeDeliveries(args.senders)
                plan = stripe.write(directory, "stripe-warmup", stripe_warm, host)
                stripe_checker.add(
                    plan, run_wrk(target, STRIPE_PATH, directory, "stripe-warmup", args.senders, args.warmup)
                )
            for round_number in range(1, args.stripe_rounds + 1):
                phase = f"stripe{round_number}"
                plan = stripe.write(directory, phase, stripe_per_sender, host)
                paid = run_wrk(target, STRIPE_PATH, directory, phase, args.senders, args.duration)
                stripe_checker.add(plan, paid)
                stripe_rows.append(paid)
                print(_line(str(round_number), "POST " + STRIPE_PATH, paid))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        if floor is not None:
            floor.server.send_signal(signal.SIGTERM)
            floor.server.wait(timeout=60)
            floor.drop()

    problems = checker.check()
    problems += check_stripe(database_url, stripe_checker) if args.stripe_rounds else []
    if not args.keep_database:
        drop()
    summarize(rows)
    if floor_rows:
        ratios = [shop.rate / floored.rate for (shop, _), (floored, _) in zip(rows, floor_rows, strict=True)]
        floor_rate = statistics.median(r.rate for r, _ in floor_rows)
        print(
            f"  against the floor {statistics.median(ratios):8.2f}× (median of {len(ratios)} interleaved rounds; "
            f"rounds {min(ratios):.2f}–{max(ratios):.2f}; floor {floor_rate:.0f}/s)"
        )
    if stripe_rows:
        rates = [r.rate for r in stripe_rows]
        best = max(stripe_rows, key=lambda r: r.rate)
        print(
            f"  stripe/s          {best.rate:8.0f}  (rounds {min(rates):.0f}–{max(rates):.0f}, median "
            f"{statistics.median(rates):.0f}; p50 {best.p50_ms:.2f} ms, p99 {best.p99_ms:.2f} ms in the best)"
        )
    print(f"\ncheck: {checker.summary}" + (f"; {stripe_checker.summary}" if stripe_rows else ""))
    everything = [r for pair in rows for r in pair] + stripe_rows
    if problems or any(r.non_200 or r.socket_errors for r in everything):
        for problem in problems:
            print(f"  PROBLEM: {problem}")
        sys.exit("the benchmark found problems (non-200 answers, socket errors or a wrong mirror)")
    print("check: OK (every 200 has exactly one processed row; users hold their newest update)")


def _line(round_label: str, label: str, r: Result) -> str:
    cpu = r.cpu
    # CPU per request of gunicorn and its PostgreSQL backends: steadier than req/s when others share the cores.
    cost = (cpu["server"] + cpu["postgres"]) * 1000 / r.rate if r.rate else 0.0
    return (
        f"{round_label:<6}{label:<26}{r.rate:>7.0f}{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}{r.max_ms:>8.1f}{r.non_200:>8}"
        f"{r.socket_errors:>7}{cost:>11.2f}   "
        f"{cpu['server']:.2f} / {cpu['postgres']:.2f} / {cpu['wrk']:.2f} / {cpu['other']:.2f}"
    )


def summarize(rows: list[tuple[Result, Result]]) -> None:
    hooks = [h for h, _ in rows]
    trivial = [t for _, t in rows]
    best_hooks = max(hooks, key=lambda r: r.rate)
    best_trivial = max(trivial, key=lambda r: r.rate)

    def spread(values: list[float], unit: str, digits: int) -> str:
        if len(values) < 2:
            return ""
        low, high, median = min(values), max(values), statistics.median(values)
        return f"  (rounds {low:.{digits}f}–{high:.{digits}f}{unit}, median {median:.{digits}f})"

    print("\nbest round (spread over the rounds)")
    print(f"  webhooks/s        {best_hooks.rate:8.0f}{spread([r.rate for r in hooks], '', 0)}")
    print(f"  webhook p50 ms    {best_hooks.p50_ms:8.2f}{spread([r.p50_ms for r in hooks], '', 2)}")
    print(f"  webhook p99 ms    {best_hooks.p99_ms:8.2f}{spread([r.p99_ms for r in hooks], '', 2)}")
    print(f"  {TRIVIAL_PATH} req/s {best_trivial.rate:8.0f}{spread([r.rate for r in trivial], '', 0)}")
    print(f"  {TRIVIAL_PATH} p99 ms{best_trivial.p99_ms:8.2f}{spread([r.p99_ms for r in trivial], '', 2)}")
    ratios = [h.rate / t.rate for h, t in rows]
    print(f"  ratio             {best_hooks.rate / best_trivial.rate:8.0%}{spread([100 * r for r in ratios], '%', 0)}")
    target = best_hooks.rate >= 800 and best_hooks.p99_ms < 25 and best_hooks.rate / best_trivial.rate >= 0.25
    print(f"  target (≥ 800/s, p99 < 25 ms, ≥ 25% of {TRIVIAL_PATH}): {'met' if target else 'MISSED'}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
