"""gunicorn settings for `make serve` (`gunicorn -c gunicorn.conf.py wsgi:app`).

Every value can be overridden from the environment (GUNICORN_*), and gunicorn's own command-line
flags override this file (`gunicorn -c gunicorn.conf.py -w 3 wsgi:app`).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

from gunicorn.glogging import Logger


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


# Where to listen. On a platform that sets PORT (Heroku, Render, Fly…), all interfaces on that port,
# as gunicorn itself does; otherwise localhost only, for a reverse proxy on the same machine.
if os.environ.get("GUNICORN_BIND"):
    bind = os.environ["GUNICORN_BIND"].split()
elif os.environ.get("PORT"):
    bind = [f"0.0.0.0:{os.environ['PORT']}"]
else:
    bind = ["127.0.0.1:8000"]

# Workers and threads, measured with bench/webhooks.py on the 2-core development machine, where
# PostgreSQL shares the cores (figures in README.md, "Benchmark figures"): the work is CPU-bound
# Python plus short database round trips, so beyond about one process per core (and one spare, for
# the moments a process waits on the database) more processes only take turns on the same cores.
# In the quiet rounds, 3 gthread workers x 2 threads served 570-680 webhook deliveries/s against
# 460-520 for 5 gthread x 2 (gunicorn's usual 2 x cores + 1) and for 5 sync workers, at the lowest
# CPU per request. On a machine of its own (the database elsewhere) try 2 x cores + 1 with
# GUNICORN_WORKERS. WEB_CONCURRENCY is the platforms' name for the same setting.
workers = _int("GUNICORN_WORKERS", _int("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))

# gthread rather than sync: sync answers every request with `Connection: close`, so each request
# pays a new TCP connection (more CPU per request in every measurement), and a slow client holds a
# whole worker. gthread keeps connections alive (load balancers and Svix reuse them) and parks idle
# ones in its poller, not in a thread. Two threads let a worker take the next request while one
# waits on PostgreSQL. Each thread holds at most one database connection: workers x threads per
# instance (6 here), within the pool (5 + 10 overflow per process); count them against PostgreSQL's
# (or the pooler's) max_connections when running several instances.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = _int("GUNICORN_THREADS", 2)

# A worker silent for this long is killed and replaced (a request stuck on a dead database
# connection). Svix gives up on a delivery after 15 s, browsers wait longer, 30 s covers both.
timeout = _int("GUNICORN_TIMEOUT", 30)
# On SIGTERM (deploy, scale-in), requests in flight get this long to finish before workers are
# killed. Kept under the 30 s most platforms wait between SIGTERM and SIGKILL.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 25)
# Seconds an idle keep-alive connection is kept open. Behind a load balancer, set it above the
# balancer's idle timeout (for example 75 behind an AWS ALB's 60) so gunicorn never closes a
# connection the balancer is about to reuse.
keepalive = _int("GUNICORN_KEEPALIVE", 5)

# Logs: the access log on stdout in Apache/nginx "combined" format plus the request time in
# seconds (like nginx's $request_time), with personal data left out (RedactingLogger below);
# gunicorn's own messages and the app's log on stderr.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


def without_query(target: str) -> str:
    """`/admin/users?q=bob%40example.com` → `/admin/users?[redacted]`: a query can hold an e-mail."""
    path, has_query, _ = target.partition("?")
    return f"{path}?[redacted]" if has_query else path


class RedactingLogger(Logger):
    """gunicorn's logger, with access lines that record no personal data: no query strings (in the
    request line and the Referer), no HTTP Basic user name, no cookies or Authorization. Paths stay:
    the shop's paths hold ids and slugs, never an e-mail."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["r"] = " ".join(
            (environ["REQUEST_METHOD"], without_query(environ["RAW_URI"]), environ["SERVER_PROTOCOL"])
        )
        atoms["q"] = "[redacted]" if environ.get("QUERY_STRING") else ""
        atoms["f"] = without_query(environ.get("HTTP_REFERER", "-"))
        atoms["u"] = "-"
        for name in ("{referer}i", "{http_referer}e"):
            if name in atoms:
                atoms[name] = without_query(atoms[name])
        for name in ("{cookie}i", "{authorization}i", "{http_cookie}e", "{http_authorization}e"):
            atoms.pop(name, None)
        for name in ("{query_string}e", "{raw_uri}e", "{request_uri}e"):
            if atoms.get(name):
                atoms[name] = "[redacted]"
        return atoms


logger_class = RedactingLogger

# Heartbeat files in memory: a worker is never declared dead because a disk stalled.
if Path("/dev/shm").is_dir():  # noqa: S108  (gunicorn's own advice; files are per worker, mode 0600)
    worker_tmp_dir = "/dev/shm"  # noqa: S108

# gunicorn ≥ 25 opens a control socket for `gunicornc` at one fixed path per user, and a second
# instance on the same machine takes that path over from the first. Only when asked for, at a
# path of one's choosing.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]

# Prometheus (shop.metrics): every worker keeps its counters in files of one directory, and a
# scrape adds them all up, whichever worker answers. prometheus_client reads the variable when it
# is imported, so it is set here, before the app is loaded. One directory per gunicorn instance:
# by default one named after the master's pid (the same after a reload), in memory when /dev/shm
# exists, removed at exit; PROMETHEUS_MULTIPROC_DIR picks another (give each instance its own).
_METRICS_PARENT = "/dev/shm" if Path("/dev/shm").is_dir() else tempfile.gettempdir()  # noqa: S108
_DEFAULT_METRICS_DIR = os.path.join(_METRICS_PARENT, f"shop-metrics-{os.getpid()}")
# A master started by another's USR2 (binary upgrade) inherits the old master's default: not shared.
if Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or "shop-metrics-").name.startswith("shop-metrics-"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _DEFAULT_METRICS_DIR
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)


def on_starting(server):
    # Counts of a previous run's workers would be added to this run's forever: start from none.
    for leftover in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        leftover.unlink()


def child_exit(server, worker):
    # A dead worker's counters stay in the sums; only its live gauges are dropped.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if os.environ["PROMETHEUS_MULTIPROC_DIR"] == _DEFAULT_METRICS_DIR:
        shutil.rmtree(_DEFAULT_METRICS_DIR, ignore_errors=True)


# Load the app once in the master, then fork: workers start fast and share memory, and a settings
# problem (no SECRET_KEY, no DATABASE_URL in production…) stops gunicorn once with the app's
# message instead of making every worker fail to boot in a loop. Safe because building the app
# opens no database connection; post_fork still gives each worker its own connection pool, since
# a pooled connection inherited through fork would be shared by two processes.
preload_app = True


def pre_fork(server, worker):
    # Everything the preloaded app allocated lives as long as the worker: out of the garbage
    # collector's sight, a full collection scans only what requests allocate (shorter pauses, the
    # tail latency of bench/webhooks.py), and the pages shared with the master stay shared.
    gc.freeze()


def post_fork(server, worker):
    from shop.extensions import db

    app = worker.app.wsgi()  # the app preloaded in the master
    if not hasattr(app, "app_context"):  # not the shop (bench/floor_app.py): no engine to forget
        return
    with app.app_context():
        for engine in db.engines.values():
            # close=False: leave the master's connections (if any) alone, just forget them here.
            engine.dispose(close=False)
    prefetch_clerk_keys(app)


def prefetch_clerk_keys(app) -> None:
    # In JWKS mode a worker without keys refuses every shopper: fetch them before the first request
    # rather than during it. Per worker, after the fork, so no socket or lock is shared with the
    # master. Never raises: an outage is one log line, and requests retry within a second or two.
    from shop.auth.session import session_verifier

    verifier = session_verifier(app)
    if verifier is not None and verifier.remote_keys is not None:
        verifier.remote_keys.prefetch()
