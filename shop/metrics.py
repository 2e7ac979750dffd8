"""`GET /metrics` in Prometheus's text format, for the operator's monitoring only.

Two kinds of figures, each kept where it stays true under several gunicorn workers:
- Counters and histograms of what requests did (requests by route and status with their
  latency, webhook deliveries by source, type and outcome, first-sign-in provisionings, repairs
  on sign-in) live in each process. Under gunicorn, prometheus_client's multiprocess mode keeps
  them in files under PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it before the app is
  imported) and a scrape adds up every worker's files, whichever worker answers.
- The mirror's state (last webhook, failed events, last sync) is read from PostgreSQL at scrape
  time (shop.health): identical for every worker and instance, and it survives restarts.

The endpoint answers only `Authorization: Bearer <METRICS_TOKEN>`; with no token set it does not
exist (404), so nothing about the shop leaks to the public.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, abort, current_app, g, request, request_finished, request_started
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from shop import health
from shop.extensions import db

log = logging.getLogger(__name__)

# prometheus_client chose its storage when it was imported, from this same variable.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"  # a 404 or 405 before routing: never the raw path (unbounded labels)

REQUEST_SECONDS = Histogram(
    "shop_http_request_duration_seconds",
    "Time to answer a request, by method, route (the URL rule, not the path) and status; _count counts them.",
    ["method", "route", "status"],
    registry=None,
)
WEBHOOK_DELIVERIES = Counter(
    "shop_webhook_deliveries",
    "Signed webhook deliveries by source, event type and outcome (processed, duplicate, ignored, failed).",
    ["source", "type", "outcome"],
    registry=None,
)
PROVISIONINGS = Counter(
    "shop_first_sign_in_provisionings",
    "Users created from Clerk's Backend API at their first sign-in because their webhook had not arrived.",
    registry=None,
)
SIGN_IN_RESYNCS = Counter(
    "shop_sign_in_resyncs",
    "Stale users (needs_resync) fetched again from Clerk when they signed in, by outcome (the mirror's change).",
    ["outcome"],
    registry=None,
)

# This process's own metrics: what a scrape shows when not under gunicorn's multiprocess mode.
LIVE_METRICS = (REQUEST_SECONDS, WEBHOOK_DELIVERIES, PROVISIONINGS, SIGN_IN_RESYNCS)

bp = Blueprint("metrics", __name__)


def record_webhook_delivery(source: str, type: str | None, outcome: str) -> None:
    """One signed delivery and what became of it; `type` is the event's (bounded: the sender signed it)."""
    WEBHOOK_DELIVERIES.labels(source, (type or "")[:100], outcome).inc()


def record_provisioning() -> None:
    PROVISIONINGS.inc()


def record_sign_in_resync(outcome: str) -> None:
    SIGN_IN_RESYNCS.labels(outcome).inc()


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    request_started.connect(_request_started, app)
    request_finished.connect(_request_finished, app)


def _request_started(sender: Flask, **extra: object) -> None:
    g.metrics_started = time.perf_counter()


def _request_finished(sender: Flask, response: Response, **extra: object) -> None:
    started = g.get("metrics_started")
    if started is None:
        return
    method = request.method if request.method in HTTP_METHODS else "OTHER"
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    REQUEST_SECONDS.labels(method, route, str(response.status_code)).observe(time.perf_counter() - started)


def _authorized(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@bp.get("/metrics")
def scrape() -> Response:
    token = current_app.config["METRICS_TOKEN"]
    if not token:
        abort(404)
    if not _authorized(token):
        return Response("A valid METRICS_TOKEN is needed.\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'})
    registry = CollectorRegistry()
    if MULTIPROCESS:
        MultiProcessCollector(registry)
    else:
        for metric in LIVE_METRICS:
            registry.register(metric)
    registry.register(_HealthCollector(_read_health()))
    headers = {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}
    return Response(generate_latest(registry), headers=headers)


def _read_health() -> health.MirrorHealth | None:
    try:
        with db.engine.connect() as conn, conn.begin():
            conn.execute(text("SET TRANSACTION READ ONLY"))
            return health.read(conn)
    except SQLAlchemyError as exc:
        log.warning("metrics: the database could not be read: %s", type(exc).__name__)
        return None


class _HealthCollector:
    """The mirror's figures from PostgreSQL, read once per scrape."""

    def __init__(self, figures: health.MirrorHealth | None):
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        figures = self.figures
        yield GaugeMetricFamily(
            "shop_metrics_database_up",
            "1 when the figures below could be read from PostgreSQL at this scrape, 0 when not.",
            value=0 if figures is None else 1,
        )
        if figures is None:
            return
        last = GaugeMetricFamily(
            "shop_webhook_last_processed_timestamp_seconds",
            "Unix time of the newest delivery received and processed (or ignored), per source; 0: none ever.",
            labels=["source"],
        )
        age = GaugeMetricFamily(
            "shop_webhook_seconds_since_last_processed",
            "Seconds since that delivery, by the database's clock; +Inf when there has been none.",
            labels=["source"],
        )
        failed = GaugeMetricFamily(
            "shop_webhook_failed_events",
            "Deliveries recorded as failed, waiting for Svix's retry or `flask webhooks replay`.",
            labels=["source"],
        )
        for source, webhooks in figures.webhooks.items():
            at = webhooks.last_accepted_at
            last.add_metric([source], at.timestamp() if at else 0)
            age.add_metric([source], (figures.checked_at - at).total_seconds() if at else float("inf"))
            failed.add_metric([source], webhooks.failed)
        yield from (last, age, failed)
        yield from _sync_metrics(figures.last_sync)
        yield GaugeMetricFamily(
            "shop_mail_failed",
            "Order e-mails the outbox gave up on (could not be built, or refused at every attempt): "
            "waiting for `flask mail retry`.",
            value=figures.failed_mail,
        )


def _sync_metrics(run: health.SyncRunSummary | None) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "shop_sync_last_run_timestamp_seconds",
        "Unix time the last `flask sync-clerk sync` finished; 0: never.",
        value=run.finished_at.timestamp() if run else 0,
    )
    yield GaugeMetricFamily(
        "shop_sync_last_success",
        "1 when the last sync read Clerk's whole listing and nothing failed, 0 when not (or never ran).",
        value=1 if run and run.ok else 0,
    )
    drift = GaugeMetricFamily(
        "shop_sync_last_drift_users",
        "Users the last sync had to repair, by kind: drift the webhooks had left behind.",
        labels=["kind"],
    )
    drift.add_metric(["missing"], run.created if run else 0)
    drift.add_metric(["stale"], run.updated if run else 0)
    drift.add_metric(["gone"], run.tombstoned if run else 0)
    yield drift
    yield GaugeMetricFamily(
        "shop_sync_last_failed_users", "Users the last sync could not read or repair.", value=run.failed if run else 0
    )
