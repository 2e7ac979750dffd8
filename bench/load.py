"""Load and faults: shoppers and a webhook storm through gunicorn; a database restart, a killed
worker, two instances; then an audit of the database.

    .venv/bin/python bench/load.py                        # 30 s of load on one gunicorn
    .venv/bin/python bench/load.py --fault db-restart     # PostgreSQL stopped for 10 s, then started again
    .venv/bin/python bench/load.py --fault worker-kill    # SIGKILL to a gunicorn worker in the middle of a request
    .venv/bin/python bench/load.py --instances 2          # two gunicorns on one PostgreSQL; then two syncs at once

What it does:

1. Starts a PostgreSQL of its own (pgserver, in a temporary directory, deleted afterwards: the
   fault run stops and starts it, so it is never the system's or instance/pgdata), builds the
   schema with the committed migrations, loads the demo catalogue with stock for the whole run,
   and puts the shoppers in the mirror.
2. Starts gunicorn with the committed gunicorn.conf.py on 127.0.0.1 in production mode (one, or
   two on two ports), with Clerk configured networklessly: an RSA key made for the run verifies
   the shoppers' RS256 session tokens, and a webhook secret verifies the deliveries.
3. Runs Locust (headless, through its library API): shoppers arrive during a --warmup (5 s, not in
   the figures), then the load is measured for --duration seconds (30):
   - shoppers (one requests.Session each, keeping cookies as a browser on HTTPS would) browse the
     catalogue, search, open products, add to the cart with the CSRF token from the page, and
     check out: GET /checkout for the form (CSRF token, idempotency key, expected total), then
     POST /checkout; a checkout answered with an error is submitted again with the same key,
     as a shopper pressing the button again would. An order counts as accepted when the
     shopper is sent on to pay: to Stripe, played by the shop's own Stripe stand-in on a
     gunicorn of its own (development mode, the same database), which the production gunicorn
     reaches through STRIPE_API_BASE. Shoppers do not pay: that is Stripe's page, not the shop's.
   - webhook senders play Clerk and Svix (tests/scale/support.py): users are created, updated
     and deleted in Clerk, each change is a signed `user.*` delivery; a delivery that gets no
     2xx is retried with the same svix-id, signed again with a fresh timestamp, on Svix's
     schedule compressed to seconds; 5% of deliveries are sent again after they succeeded. With
     two instances, deliveries go to either, and 20% of new ones go to both at the same moment.
   When the time is up, shoppers stop; Svix keeps retrying until every message is in, or gives
   up after its last retry (that message is lost).
4. The fault, if any, in the middle of the load: PostgreSQL stopped (pg_ctl -m immediate) for
   --outage seconds and started again; or SIGKILL to a worker found busy (state R) among the
   master's children.
5. Audits the database: every accepted order is there with the lines and total its checkout
   showed; every message has exactly one processed event and was answered "processed" at most
   once; every user is in the final state Clerk holds. With two instances, two
   `flask sync-clerk sync` start at the same moment against a stand-in Clerk Backend API
   serving Clerk's final state: one must run (and find nothing to change), the other must exit
   with 75.

Why Locust: a maintained load tool with weighted tasks, think times and per-route statistics, and
its gevent client costs the 2-core machine little next to the server. The figures are
computed from every request's own timing (Locust's request event), so that they can be split
by phase (before, during and after a fault).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import gevent
import locust  # noqa: F401  (first of the third-party modules to run: it monkey-patches with gevent)
import psutil
import psycopg
from locust import HttpUser, between, constant_throughput, task
from locust.clients import HttpSession
from locust.env import Environment
from locust.exception import StopUser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, start_gunicorn  # noqa: E402
from tests.scale.support import (  # noqa: E402
    WEBHOOK_PATH,
    Clerk,
    PlacedOrder,
    as_if_on_https,
    checkout_form,
    csrf_token,
    deliver,
    order_problems,
    webhook_problems,
)
from tests.support import TEST_PUBLISHABLE_KEY, WEBHOOK_SECRET, TokenMinter, clerk_user  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SEARCH_TERMS = ("mug", "tea", "notebook", "pen", "socks", "poster", "bottle", "zzz")
RECOVERY_ALLOWANCE = 5.0  # seconds after PostgreSQL is up within which failures still count as the outage's
CHECKOUT_RETRIES = 30  # a patient shopper: one more press of "Place order" a second after an error


# --------------------------------------------------------------------------- the run's shared state


@dataclass
class Sample:
    start: float  # wall clock, seconds
    end: float
    route: str
    ms: float
    status: int  # 0: no answer (connection failed)
    ok: bool


@dataclass
class Run:
    urls: list[str]
    shoppers: list[str]  # Clerk ids, in the mirror
    tokens: dict[str, str]
    issued_at: int
    clerk: Clerk
    cross_share: float
    slugs: list[str]
    payment_url: str  # where a placed order sends the shopper: the Stripe stand-in's pages
    samples: list[Sample] = field(default_factory=list)
    placed: list[PlacedOrder] = field(default_factory=list)
    refused_checkouts: list[str] = field(default_factory=list)
    abandoned_checkouts: int = 0
    checkouts_in_progress: int = 0
    crossings: int = 0
    over: bool = False
    next_shopper: int = 0
    next_sender: int = 0

    def record(self, request_type, name, response_time, response=None, exception=None, start_time=None, **_):
        status = getattr(response, "status_code", 0) or 0
        start = start_time or time.time() - response_time / 1000
        self.samples.append(Sample(start, start + response_time / 1000, f"{request_type} {name}", response_time,
                                   status, exception is None))  # fmt: skip


RUN: Run | None = None


class Shopper(HttpUser):
    """A signed-in shopper: browses, searches, fills the cart, checks out."""

    wait_time = between(0.5, 1.5)
    host = "http://127.0.0.1"  # every request names its instance's URL

    def on_start(self) -> None:
        number = RUN.next_shopper
        RUN.next_shopper += 1
        self.clerk_id = RUN.shoppers[number % len(RUN.shoppers)]
        self.base = RUN.urls[number % len(RUN.urls)]
        self.rng = random.Random(number)
        self.client.cookies.set("__session", RUN.tokens[self.clerk_id])
        # As clerk-js sets them: the client last changed when the token was issued (an older token
        # would be one to refresh).
        self.client.cookies.set("__client_uat", str(RUN.issued_at))

    def page(self, method: str, path: str, name: str, expect=(200,), **kwargs):
        """One request, marked failed unless its status is expected; the response (status 0: no answer)."""
        url = path if path.startswith("http") else self.base + path
        with self.client.request(
            method, url, name=name, catch_response=True, allow_redirects=False, timeout=30, **kwargs
        ) as response:
            if response.status_code in expect:
                response.success()
            else:
                response.failure(f"status {response.status_code}")
        as_if_on_https(self.client.cookies)
        return response

    def follow(self, response, name: str):
        return self.page("GET", urljoin(self.base + "/", response.headers["Location"]), name)

    def check_time(self) -> None:
        if RUN.over:
            raise StopUser

    @task(4)
    def catalogue(self) -> None:
        self.check_time()
        self.page("GET", "/", "/")

    @task(2)
    def search(self) -> None:
        self.check_time()
        self.page("GET", f"/?q={self.rng.choice(SEARCH_TERMS)}", "/?q=<term>")

    @task(4)
    def product(self) -> None:
        self.check_time()
        self.page("GET", f"/products/{self.rng.choice(RUN.slugs)}", "/products/<slug>")

    @task(3)
    def add_to_cart(self) -> None:
        self.check_time()
        slug = self.rng.choice(RUN.slugs)
        product = self.page("GET", f"/products/{slug}", "/products/<slug>")
        token = csrf_token(product.text) if product.status_code == 200 else None
        if token is None:
            return
        form = {"csrf_token": token, "slug": slug, "quantity": "1", "next": f"/products/{slug}"}
        added = self.page("POST", "/cart/add", "/cart/add", expect=(302,), data=form)
        if added.status_code == 302:
            self.follow(added, "/products/<slug>")  # as the browser does; the flash message is shown there

    @task(2)
    def checkout(self) -> None:
        self.check_time()
        page = self.page("GET", "/checkout", "/checkout", expect=(200, 302))
        if page.status_code != 200:  # 302: an empty cart is sent back to the cart
            return
        form = checkout_form(page.text)
        if form is None:
            RUN.refused_checkouts.append("checkout page without its form")
            return
        RUN.checkouts_in_progress += 1
        try:
            for _ in range(CHECKOUT_RETRIES):
                answer = self.page("POST", "/checkout", "/checkout", expect=(302, 303), data=form.data())
                if answer.status_code in (302, 303):
                    if not answer.headers["Location"].startswith(RUN.payment_url):
                        RUN.refused_checkouts.append(answer.headers["Location"])  # sent back, with a message
                        return
                    # On to Stripe's page: the order is placed; its id is found by its key in the audit.
                    RUN.placed.append(
                        PlacedOrder(0, self.clerk_id, form.idempotency_key, form.expected_total, form.lines)
                    )
                    return
                if 0 < answer.status_code < 500:
                    RUN.refused_checkouts.append(f"status {answer.status_code}")
                    return
                gevent.sleep(1)  # no answer, or 5xx: the shopper presses "Place order" again
            RUN.abandoned_checkouts += 1
        finally:
            RUN.checkouts_in_progress -= 1

    @task(1)
    def orders(self) -> None:
        self.check_time()
        self.page("GET", "/orders", "/orders")


class WebhookSender(HttpUser):
    """Svix delivering Clerk's events: new ones while the load lasts, retries until all are in."""

    fixed_count = 4
    wait_time = constant_throughput(25)
    host = "http://127.0.0.1"

    def on_start(self) -> None:
        RUN.next_sender += 1
        self.rng = random.Random(1000 + RUN.next_sender)
        self.other = HttpSession(
            base_url=self.host, request_event=self.environment.events.request, user=self, pool_manager=None
        )

    @task
    def send(self) -> None:
        clerk = RUN.clerk
        due = clerk.due()
        if due is not None:
            message, duplicate = due
        elif RUN.over:
            return  # Clerk changes nothing more; only retries and duplicates are left
        else:
            message, duplicate = clerk.change(), False
            if len(RUN.urls) > 1 and self.rng.random() < RUN.cross_share:
                # One delivery arriving at both instances at the same moment.
                RUN.crossings += 1
                first, second = RUN.urls
                gevent.joinall(
                    [
                        gevent.spawn(deliver, self.client.post, first + WEBHOOK_PATH, clerk, message),
                        gevent.spawn(deliver, self.other.post, second + WEBHOOK_PATH, clerk, message, duplicate=True),
                    ]
                )
                return
        deliver(self.client.post, self.rng.choice(RUN.urls) + WEBHOOK_PATH, clerk, message, duplicate=duplicate)


# --------------------------------------------------------------------------- PostgreSQL and gunicorn


class PrivatePostgres:
    """A PostgreSQL of the benchmark's own, in a temporary directory: the fault run stops it."""

    def __init__(self) -> None:
        import pgserver

        self.directory = Path(tempfile.mkdtemp(prefix="bench-load-"))
        self.data = self.directory / "pgdata"
        self.server = pgserver.get_server(self.data, cleanup_mode="delete")
        self.libpq = self.server.get_uri()
        self.url = self.libpq.replace("postgresql://", "postgresql+psycopg://", 1)

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.data, user=self.server.system_user)

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()

    def pids(self) -> list[int]:
        pid = self.server.get_pid()
        try:
            master = psutil.Process(pid)
            return [pid, *(child.pid for child in master.children(recursive=True))]
        except (psutil.Error, TypeError):
            return []

    def close(self) -> None:
        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


STRIPE_KEY = "sk_test_bench_load_standin"
STRIPE_WEBHOOK_SECRET = "whsec_bench_load_standin"  # noqa: S105  (the run's own, signs nothing real)


def app_env(database_url: str, minter: TokenMinter, stripe_url: str) -> dict[str, str]:
    """Production mode: no FLASK_DEBUG, no stand-in; Clerk configured networklessly with our key,
    Stripe's API at `stripe_url` (the stand-in's gunicorn)."""
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key",
        "CLERK_PUBLISHABLE_KEY": TEST_PUBLISHABLE_KEY,
        "CLERK_JWT_KEY": minter.public_pem,
        "CLERK_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_API_BASE": stripe_url,
        "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
    }


def stripe_standin(database_url: str, minter: TokenMinter, folder: str) -> tuple[subprocess.Popen, str]:
    """The shop's Stripe stand-in (development mode: it is refused in production) on a one-worker gunicorn."""
    port = free_port()
    env = {
        **app_env(database_url, minter, ""),
        "FLASK_DEBUG": "1",
        "SHOP_DEV_STRIPE": "1",
        "SHOP_DEV_STRIPE_DIR": folder,
        "STRIPE_API_BASE": "",
    }
    server = start_gunicorn(env, port, RESULTS / "load-stripe-standin.log", ["--workers", "1"])
    return server, f"http://127.0.0.1:{port}/dev-stripe"


def shopper_users(count: int) -> list[dict]:
    return [
        clerk_user(f"user_shopper{n:04d}", email=f"shopper{n}@example.com", first_name="Shopper", last_name=str(n))
        for n in range(count)
    ]


def prepare(database_url: str, minter: TokenMinter, users: list[dict]) -> list[str]:
    """Schema (committed migrations), catalogue with stock for the run, users (shoppers, Clerk's) in the mirror."""
    import logging

    import flask_migrate

    from shop import create_app, mirror
    from shop.clerk.users import parse_user
    from shop.extensions import db
    from shop.store.seed import DEMO_PRODUCTS, seed

    app = create_app(app_env(database_url, minter, stripe_url=""))  # the set-up takes no payment
    logging.getLogger("shop").setLevel(logging.WARNING)
    with app.app_context():
        flask_migrate.upgrade()
        seed()
        db.session.execute(db.text("UPDATE products SET stock = 1000000"))
        for start in range(0, len(users), 1000):
            mirror.apply_snapshots(db.session.connection(), [parse_user(user) for user in users[start : start + 1000]])
            db.session.commit()
        db.engine.dispose()
    return [product.slug for product in DEMO_PRODUCTS]


def settled_workers(server: subprocess.Popen) -> int:
    """How many workers the master keeps, once it has forked them all (unchanged for a second)."""
    master, count, since = psutil.Process(server.pid), -1, time.monotonic()
    while time.monotonic() - since < 1.0:
        now = len(master.children())
        if now != count:
            count, since = now, time.monotonic()
        time.sleep(0.05)
    return count


def stop_gunicorn(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def tree_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def gunicorn_pids(servers: list[subprocess.Popen]) -> list[int]:
    pids = []
    for server in servers:
        with contextlib.suppress(psutil.Error):
            pids += [server.pid, *(c.pid for c in psutil.Process(server.pid).children())]
    return pids


# --------------------------------------------------------------------------- faults


@dataclass
class FaultLog:
    events: dict[str, float] = field(default_factory=dict)  # name -> wall clock
    notes: list[str] = field(default_factory=list)


def restart_database(pg: PrivatePostgres, outage: float, log: FaultLog) -> None:
    log.events["stop"] = time.time()
    pg.stop()
    log.events["stopped"] = time.time()
    gevent.sleep(outage)
    log.events["start"] = time.time()
    pg.start()
    log.events["started"] = time.time()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"


def kill_busy_worker(server: subprocess.Popen, log: FaultLog, expected_workers: int) -> None:
    """SIGKILL a worker caught running (state R: in the middle of a request), then wait for the respawn."""
    master = psutil.Process(server.pid)
    victim, state, deadline = None, "?", time.monotonic() + 3
    while victim is None and time.monotonic() < deadline:
        for child in master.children():
            if _state(child.pid) == "R":
                victim, state = child.pid, "R"
                break
        else:
            gevent.sleep(0.001)
    if victim is None:  # none caught running in 3 s: the one with the most connections open
        victim = max(master.children(), key=lambda c: len(c.net_connections(kind="tcp"))).pid
        state = _state(victim)
    os.kill(victim, signal.SIGKILL)
    log.events["kill"] = time.time()
    log.notes.append(f"SIGKILL to worker {victim} (state {state} at that moment)")
    while time.monotonic() < deadline + 30:
        children = [c.pid for c in master.children()]
        if victim not in children and len(children) >= expected_workers:
            log.events["respawned"] = time.time()
            log.notes.append(f"master {server.pid} has {len(children)} workers again")
            return
        gevent.sleep(0.02)
    log.notes.append("the master did not respawn the worker within 30 s")


# --------------------------------------------------------------------------- the sync race


def sync_race(database_url: str, clerk: Clerk, shoppers: list[dict]) -> dict:
    """Two `flask sync-clerk sync` started together against a stand-in Backend API holding Clerk's final state.

    The stand-in holds its listing until one of the two processes has exited, so the sync that
    got the lock is still inside it when the other one tries: however far apart the two
    processes' start-ups fall on a busy machine, the second finds the lock taken. (Were both
    inside at once, neither could exit until the hold times out, and both would exit 0.)
    """
    import logging
    import threading

    from tests.sync.standin import SECRET_KEY, StandInClerk, serve

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    standin = StandInClerk()
    standin.put(*shoppers, *clerk.live_users())
    one_exited = threading.Event()
    standin.before_page = lambda offset: one_exited.wait(timeout=60) if offset == 0 else None
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "CLERK_"))},
        "FLASK_APP": "wsgi",
        "FLASK_SKIP_DOTENV": "1",
        "FLASK_DEBUG": "0",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key",
        "SHOP_DEV_AUTH": "0",
        "CLERK_SECRET_KEY": SECRET_KEY,
    }
    flask = str(ROOT / ".venv" / "bin" / "flask")
    with serve(standin):
        env["CLERK_API_URL"] = standin.url
        started = time.monotonic()
        runs = [
            subprocess.Popen(
                [flask, "sync-clerk", "sync"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]  # fmt: skip
        outputs: list[tuple[str, str] | None] = [None, None]

        def collect(index: int) -> None:
            outputs[index] = runs[index].communicate(timeout=300)
            one_exited.set()

        gevent.joinall([gevent.spawn(collect, 0), gevent.spawn(collect, 1)])
        seconds = time.monotonic() - started
    return {
        "clerk_users": len(standin.users),
        "exit_codes": [run.returncode for run in runs],
        "outputs": [(out.strip().splitlines()[-2:], err.strip().splitlines()[-1:]) for out, err in outputs],
        "seconds": seconds,
    }


# --------------------------------------------------------------------------- the run


@dataclass
class Outcome:
    label: str
    workers: int
    started: float = 0.0  # the warm-up's start
    measured_from: float = 0.0  # the figures' start: the warm-up is over
    load_end: float = 0.0
    drained: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    load_average: float = 0.0
    faults: FaultLog = field(default_factory=FaultLog)
    hook_problems: list[str] = field(default_factory=list)
    hook_counts: dict[str, int] = field(default_factory=dict)
    order_problems: list[str] = field(default_factory=list)
    order_counts: dict[str, int] = field(default_factory=dict)
    race: dict | None = None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--duration", type=float, default=30, help="seconds of load measured, after the warm-up (default 30)")
    add("--warmup", type=float, default=5, help="seconds of warm-up: shoppers arrive, workers warm (default 5)")
    add("--shoppers", type=int, default=20, help="simulated shoppers (default 20)")
    add("--think", type=float, nargs=2, default=(0.5, 1.5), metavar=("MIN", "MAX"),
        help="seconds a shopper waits between two actions (default 0.5 1.5)")  # fmt: skip
    add("--webhook-rate", type=float, default=40, help="webhook deliveries per second (default 40)")
    add("--senders", type=int, default=8, help="concurrent webhook senders (default 8)")
    add("--clerk-users", type=int, default=5000, help="users Clerk (and the mirror) has before the run (default 5000)")
    add("--new-users", type=int, default=5000, help="most users Clerk may create during the run (default 5000)")
    add("--fault", choices=("db-restart", "worker-kill"), help="the fault in the middle of the load")
    add("--outage", type=float, default=10, help="seconds PostgreSQL stays down (db-restart; default 10)")
    add("--fault-at", type=float, help="seconds into the load when the fault strikes (default: a third)")
    add("--instances", type=int, default=1, choices=(1, 2), help="gunicorn servers on the one database")
    add("--workers", type=int, help="workers per gunicorn (default: gunicorn.conf.py's)")
    add("--drain-limit", type=float, default=75, help="seconds Svix may keep retrying after the load")
    return parser.parse_args()


def run(args: argparse.Namespace) -> Outcome:
    global RUN
    label = args.fault or ("two-instances" if args.instances == 2 else "load")
    minter = TokenMinter()
    shoppers = shopper_users(args.shoppers)
    pg = PrivatePostgres()
    servers: list[subprocess.Popen] = []
    servers_apart: list[subprocess.Popen] = []  # the Stripe stand-in: not the shop, not in its figures
    try:
        clerk = Clerk(users=args.clerk_users + args.new_users, existing=args.clerk_users, create_share=0.3)
        slugs = prepare(pg.url, minter, shoppers + clerk.live_users())
        with psycopg.connect(pg.libpq, autocommit=True) as conn:  # no autovacuum or checkpoint of the set-up mid-run
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
        stripe_server, stripe_url = stripe_standin(pg.url, minter, tempfile.mkdtemp(prefix="bench-stripe-"))
        servers_apart.append(stripe_server)
        urls = []
        for n in range(args.instances):
            port = free_port()
            log_path = RESULTS / f"load-{label}-gunicorn-{n + 1}.log"
            workers = ["--workers", str(args.workers)] if args.workers else []
            servers.append(start_gunicorn(app_env(pg.url, minter, stripe_url), port, log_path, workers))
            urls.append(f"http://127.0.0.1:{port}")
        out = Outcome(label, settled_workers(servers[0]))
        print(f"gunicorn: {args.instances} × {out.workers} workers (gunicorn.conf.py); PostgreSQL: pgserver, its own")

        now = int(time.time())
        tokens = {u["id"]: minter.mint(u["id"], iat=now, nbf=now - 5, exp=now + 3600, azp=None) for u in shoppers}
        RUN = Run(
            urls,
            [u["id"] for u in shoppers],
            tokens,
            now,
            clerk,
            cross_share=0.2,
            slugs=slugs,
            payment_url=stripe_url.removesuffix("/dev-stripe") + "/dev-stripe/checkout/",
        )
        Shopper.wait_time = between(*args.think)
        WebhookSender.fixed_count = args.senders
        WebhookSender.wait_time = constant_throughput(args.webhook_rate / args.senders)
        env = Environment(user_classes=[Shopper, WebhookSender])
        env.events.request.add_listener(RUN.record)
        runner = env.create_local_runner()

        fault_at = args.fault_at if args.fault_at is not None else args.duration / 3
        if args.fault == "db-restart":
            gevent.spawn_later(args.warmup + fault_at, restart_database, pg, args.outage, out.faults)
        elif args.fault == "worker-kill":
            gevent.spawn_later(args.warmup + fault_at, kill_busy_worker, servers[0], out.faults, out.workers)
        print(f"load: {args.shoppers} shoppers (think {args.think[0]:g}–{args.think[1]:g} s), "
              f"{args.webhook_rate:g} webhook deliveries/s from {args.senders} senders; {args.warmup:g} s of warm-up, "
            f"{args.duration:g} s measured"
              + (f"; {args.fault} at {fault_at:g} s" if args.fault else ""), flush=True)  # fmt: skip

        out.started = time.time()
        users = args.shoppers + args.senders
        runner.start(users, spawn_rate=users / args.warmup if args.warmup > 1 else users)  # arriving over the warm-up
        gevent.sleep(args.warmup)
        meter = CpuMeter(servers, pg)
        out.measured_from = time.time()
        gevent.sleep(args.duration)
        RUN.over = True
        out.load_end = time.time()
        out.cpu = meter.used()
        out.load_average = os.getloadavg()[0]

        # Svix keeps retrying what is not in yet; shoppers finish the checkout they are in.
        deadline = time.monotonic() + args.drain_limit
        while time.monotonic() < deadline and (clerk.pending() or clerk.queued() or RUN.checkouts_in_progress):
            gevent.sleep(0.2)
        out.drained = time.time() - out.load_end
        runner.quit()
        for server in servers:
            stop_gunicorn(server)

        with psycopg.connect(pg.libpq) as conn:
            out.hook_problems, out.hook_counts = webhook_problems(conn, clerk)
            out.order_problems, out.order_counts = order_problems(conn, with_order_ids(conn, RUN.placed), RUN.shoppers)
        if args.instances == 2:
            out.race = sync_race(pg.url, clerk, shoppers)
        return out
    finally:
        for server in servers + servers_apart:
            stop_gunicorn(server)
        pg.close()


def with_order_ids(conn, placed: list[PlacedOrder]) -> list[PlacedOrder]:
    """The orders shoppers were sent to pay for, with the ids their checkout keys have in the database
    (0, reported missing, for a key with no order)."""
    keys = [order.idempotency_key for order in placed]
    ids = dict(conn.execute("SELECT idempotency_key, id FROM orders WHERE idempotency_key = ANY(%s)", (keys,)))
    return [dataclasses.replace(order, order_id=ids.get(order.idempotency_key, 0)) for order in placed]


class CpuMeter:
    """CPU seconds used during the load by gunicorn, PostgreSQL, this process (Locust) and the machine."""

    def __init__(self, servers: list[subprocess.Popen], pg: PrivatePostgres):
        self.servers, self.pg = servers, pg
        self.before = self.sample()

    def sample(self) -> dict[str, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        machine = psutil.cpu_times()
        return {
            "gunicorn": tree_cpu(gunicorn_pids(self.servers)),
            "postgres": tree_cpu(self.pg.pids()),
            "locust": me.ru_utime + me.ru_stime,
            "machine": machine.user + machine.nice + machine.system + machine.irq + machine.softirq + machine.steal,
        }

    def used(self) -> dict[str, float]:
        after = self.sample()
        return {side: after[side] - self.before[side] for side in after}


# --------------------------------------------------------------------------- the report


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


ROUTE_ORDER = [
    "GET /", "GET /?q=<term>", "GET /products/<slug>", "POST /cart/add", "GET /checkout", "POST /checkout",
    "GET /orders/<id>", "GET /orders", f"POST {WEBHOOK_PATH}",
]  # fmt: skip


def figures(route: str, found: list[Sample], seconds: float) -> dict:
    ms = [s.ms for s in found]
    return {
        "route": route,
        "requests": len(found),
        "rps": len(found) / seconds,
        "p50": percentile(ms, 0.50),
        "p99": percentile(ms, 0.99),
        "max": max(ms, default=float("nan")),
        "errors": sum(1 for s in found if not s.ok),
    }


def route_table(samples: list[Sample], seconds: float) -> list[dict]:
    by_route: dict[str, list[Sample]] = {}
    for sample in samples:
        by_route.setdefault(sample.route, []).append(sample)
    order = sorted(by_route, key=lambda r: (ROUTE_ORDER.index(r) if r in ROUTE_ORDER else 99, r))
    rows = [figures(route, by_route[route], seconds) for route in order]
    rows.append(figures("all pages", [s for s in samples if WEBHOOK_PATH not in s.route], seconds))
    rows.append(figures("everything", samples, seconds))
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"  {'route':<28}{'requests':>9}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'errors':>8}")
    for r in rows:
        print(f"  {r['route']:<28}{r['requests']:>9}{r['rps']:>8.1f}{r['p50']:>8.1f}{r['p99']:>8.1f}"
              f"{r['max']:>8.0f}{r['errors']:>8}")  # fmt: skip


def report_db_restart(out: Outcome, result: dict) -> tuple[float, float]:
    """The outage's figures; returns the window in which failures are the outage's."""
    ev, started = out.faults.events, out.measured_from
    page_failures = [s for s in RUN.samples if not s.ok and WEBHOOK_PATH not in s.route]
    hook_failures = [s for s in RUN.samples if not s.ok and WEBHOOK_PATH in s.route]
    after = [s for s in RUN.samples if s.start >= ev["started"] and s.ok]
    first_page = min((s.end for s in after if WEBHOOK_PATH not in s.route), default=float("nan"))
    first_hook = min((s.end for s in after if WEBHOOK_PATH in s.route), default=float("nan"))
    last_failure = max((s.end for s in page_failures + hook_failures), default=ev["started"])
    others = sorted({f"{s.route} {s.status or 'no answer'}" for s in page_failures + hook_failures if s.status != 503
                     and not (WEBHOOK_PATH in s.route and s.status >= 500)})  # fmt: skip
    fault = {
        "stopped_at": ev["stop"] - started,
        "down_seconds": ev["start"] - ev["stopped"],
        "restart_seconds": ev["started"] - ev["start"],
        "up_at": ev["started"] - started,
        "pages_503": sum(1 for s in page_failures if s.status == 503),
        "pages_other_failures": sum(1 for s in page_failures if s.status != 503),
        "webhooks_5xx": sum(1 for s in hook_failures if s.status >= 500),
        "webhooks_other_failures": sum(1 for s in hook_failures if s.status < 500),
        "other_failures": others,
        "first_page_ok": first_page - ev["started"],
        "first_webhook_ok": first_hook - ev["started"],
        "last_failure": last_failure - ev["started"],
    }
    result["fault"] = fault
    print(f"\nfault: PostgreSQL stopped (pg_ctl -m immediate) at {fault['stopped_at']:.1f} s, down "
          f"{fault['down_seconds']:.1f} s, restart took {fault['restart_seconds']:.1f} s: accepting connections "
          f"again at {fault['up_at']:.1f} s")  # fmt: skip
    print(f"  pages answered 503: {fault['pages_503']} (other failures: {fault['pages_other_failures']}); "
          f"webhook deliveries answered 5xx: {fault['webhooks_5xx']} (other failures: "
          f"{fault['webhooks_other_failures']}){': ' + ', '.join(others) if others else ''}")  # fmt: skip
    print(f"  after PostgreSQL was up: first page 200 after {fault['first_page_ok']:.2f} s, first webhook 200 after "
          f"{fault['first_webhook_ok']:.2f} s, last failure {fault['last_failure']:+.2f} s")  # fmt: skip
    return ev["stop"], ev["started"] + RECOVERY_ALLOWANCE


def report_worker_kill(out: Outcome, result: dict) -> tuple[float, float]:
    ev = out.faults.events
    for note in out.faults.notes:
        print(f"\nfault: {note}" if note.startswith("SIGKILL") else f"  {note}")
    near = [s for s in RUN.samples if not s.ok and ev["kill"] - 1 <= s.end <= ev["kill"] + 2]
    respawn = ev.get("respawned", float("nan")) - ev["kill"]
    routes = sorted({s.route for s in near})
    result["fault"] = {"failed_at_kill": len(near), "routes": routes, "respawn_seconds": respawn}
    print(
        f"  requests that failed at the kill: {len(near)} ({', '.join(routes) or 'none'}); "
        f"new worker after {respawn:.2f} s"
    )
    return ev["kill"] - 1, ev["kill"] + 2


def report(args: argparse.Namespace, out: Outcome) -> list[str]:
    elapsed = out.load_end - out.measured_from
    warmup = [s for s in RUN.samples if s.start < out.measured_from]
    load_samples = [s for s in RUN.samples if out.measured_from <= s.start < out.load_end]
    rows = route_table(load_samples, elapsed)
    warm = figures("warm-up", warmup, out.measured_from - out.started)
    print(f"\nwarm-up, not in the figures: {warm['requests']} requests in {out.measured_from - out.started:.0f} s, "
          f"p50 {warm['p50']:.1f} ms, p99 {warm['p99']:.1f} ms, errors {warm['errors']}")  # fmt: skip
    print(f"during the {elapsed:.0f} s measured (p50/p99 of every request; errors: answers not as expected)")
    print_table(rows)
    cpu, cores = out.cpu, os.cpu_count() or 1
    print(f"CPU (cores busy during the load): gunicorn {cpu['gunicorn'] / elapsed:.2f}, PostgreSQL "
          f"{cpu['postgres'] / elapsed:.2f}, Locust {cpu['locust'] / elapsed:.2f}; whole machine "
          f"{cpu['machine'] / elapsed:.2f} of {cores}; load average {out.load_average:.2f}")  # fmt: skip
    later = sum(1 for s in RUN.samples if s.start >= out.load_end)
    print(
        f"after the load: {later} more requests in {out.drained:.1f} s (Svix's retries and duplicates, "
        "checkouts being finished)"
    )
    clerk = RUN.clerk
    result = {
        "label": out.label, "args": vars(args), "workers": out.workers, "elapsed": elapsed, "routes": rows,
        "cpu": {k: v / elapsed for k, v in cpu.items()}, "load_average": out.load_average, "warmup": warm,
        "webhooks": {**clerk.counts(), **out.hook_counts, "statuses": dict(clerk.statuses)},
        "orders": out.order_counts,
    }  # fmt: skip
    problems = out.hook_problems + out.order_problems

    window = (0.0, 0.0)
    if args.fault == "db-restart":
        window = report_db_restart(out, result)
    elif args.fault == "worker-kill":
        window = report_worker_kill(out, result)
    unplanned = [s for s in RUN.samples if not s.ok and not window[0] <= s.end <= window[1]]
    result["unplanned_errors"] = len(unplanned)
    if unplanned:
        kinds = sorted({f"{s.route} {s.status or 'no answer'}" for s in unplanned})
        problems.append(f"{len(unplanned)} requests failed outside the planned fault: {', '.join(kinds[:8])}")

    w = result["webhooks"]
    answers = ", ".join(f"{status or 'none'}: {count}" for status, count in sorted(clerk.statuses.items()))
    print(f"\nwebhooks: {w['messages']} messages about {w['users_in_messages']} users; Clerk holds {w['users']} users "
          f"({w['deleted']} deleted by the end); "
          f"{w['deliveries']} deliveries, answers {answers}")  # fmt: skip
    crossing = f", {RUN.crossings} messages sent to both instances at once" if args.instances == 2 else ""
    print(f"  duplicates sent on purpose {w['duplicates_sent']}{crossing}; messages retried {w['retried']}")
    print(f"  sent {w['messages']}, accepted {w['accepted']}, lost {w['lost']}; webhook_events rows {w['events']} "
          f"({w['events_processed']} processed); duplicate effects {w['duplicate_effects']}; users in Clerk's "
          f"final state {w['users_checked'] - w['users_wrong']}/{w['users_checked']}")  # fmt: skip
    o = out.order_counts
    print(
        f"orders: accepted {o['accepted']}, found {o['found']} (as their checkout showed them: "
        f"{o['found'] - o['wrong']}); in the database {o['in_database']}, placed but never shown to the shopper "
        f"{o['unconfirmed']}; checkouts refused {len(RUN.refused_checkouts)}, abandoned {RUN.abandoned_checkouts}"
    )
    if RUN.refused_checkouts or RUN.abandoned_checkouts:
        problems.append(f"checkouts refused: {RUN.refused_checkouts[:3]}; abandoned: {RUN.abandoned_checkouts}")

    if out.race is not None:
        race = out.race
        result["sync_race"] = race
        print(
            f"\ntwo `flask sync-clerk sync` started together ({race['clerk_users']} users in the stand-in Clerk, "
            f"its listing held until one exits): exit codes {race['exit_codes']}, {race['seconds']:.1f} s"
        )
        for code, (stdout, stderr) in zip(race["exit_codes"], race["outputs"], strict=True):
            print(f"  exit {code}: {' / '.join(stdout if code == 0 else stderr)}")
        ran = [stdout for code, (stdout, _) in zip(race["exit_codes"], race["outputs"], strict=True) if code == 0]
        if sorted(race["exit_codes"]) != [0, 75]:
            problems.append(f"the two syncs exited with {race['exit_codes']}, not one 0 and one 75")
        elif not any("created=0 updated=0" in line and "tombstoned=0 failed=0" in line for line in ran[0]):
            problems.append("the sync that ran found the mirror different from Clerk")

    pages = rows[-2]
    verdict = "met" if pages["p99"] < 100 and not unplanned else "MISSED"
    print(
        f"\ntarget (no error but the planned fault's, p99 of pages under 100 ms): {verdict} "
        f"(pages p99 {pages['p99']:.1f} ms, {len(unplanned)} unplanned errors)"
    )
    (RESULTS / f"load-{out.label}.json").write_text(json.dumps(result, indent=2, default=str))
    return problems


def main() -> None:
    args = parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before the run")
    out = run(args)
    problems = report(args, out)
    if problems:
        for problem in problems:
            print(f"PROBLEM: {problem}")
        sys.exit("the run found problems")
    print("check: OK (every accepted order and every webhook effect is in the database; nothing lost)")


if __name__ == "__main__":
    main()
