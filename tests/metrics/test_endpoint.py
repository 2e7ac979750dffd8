"""`GET /metrics` in one process: who may read it, and what it counts after a known sequence of events."""

from __future__ import annotations

import json
import math

import pytest
from sqlalchemy import text

from shop import create_app
from shop.config import ConfigError
from shop.extensions import db
from tests.conftest import settings
from tests.metrics.support import AUTH, TOKEN, requests_counted, samples, value
from tests.support import clerk_user, event, signed_headers
from tests.sync.conftest import user
from tests.sync.standin import SECRET_KEY, StandInClerk, serve


@pytest.fixture
def clerk():
    with serve(StandInClerk()) as standin:
        yield standin


@pytest.fixture
def metrics_app(make_app, clerk):
    return make_app(METRICS_TOKEN=TOKEN, CLERK_SECRET_KEY=SECRET_KEY, CLERK_API_URL=clerk.url)


def scrape(client):
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.data
    return samples(response.get_data(as_text=True))


def test_without_a_token_configured_there_is_no_metrics_endpoint(client):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong-token-of-the-same-kind",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer \u00e9t\u00e9-" + TOKEN,
    ],
)
def test_a_missing_or_wrong_token_is_refused(metrics_app, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = metrics_app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"shop_" not in response.data


def test_the_right_token_gets_prometheus_text(metrics_app):
    response = metrics_app.test_client().get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert response.headers["Cache-Control"] == "no-store"
    found = samples(response.get_data(as_text=True))
    assert value(found, "shop_metrics_database_up") == 1


@pytest.mark.parametrize("token", ["short", "sixteen chars !!", "a-long-token\twith-a-tab"])
def test_a_weak_or_malformed_token_stops_the_app_with_one_sentence(database_url, token):
    with pytest.raises(ConfigError) as refused:
        create_app(settings(database_url, METRICS_TOKEN=token))
    [problem] = refused.value.problems
    assert problem.startswith("METRICS_TOKEN must be at least 16 characters without spaces")


def test_before_anything_happened(metrics_app):
    found = scrape(metrics_app.test_client())
    assert value(found, "shop_webhook_last_processed_timestamp_seconds", source="clerk") == 0
    assert math.isinf(value(found, "shop_webhook_seconds_since_last_processed", source="clerk"))
    assert value(found, "shop_webhook_failed_events", source="clerk") == 0
    assert value(found, "shop_sync_last_run_timestamp_seconds") == 0
    assert value(found, "shop_sync_last_success") == 0


@pytest.fixture
def blocked_first_name(metrics_app):
    """A database-level fault: a row with first_name 'Blocked' is refused, so processing it fails."""
    with metrics_app.app_context():
        db.session.execute(
            text("ALTER TABLE users ADD CONSTRAINT test_fault CHECK (first_name <> 'Blocked') NOT VALID")
        )
        db.session.commit()
    yield
    with metrics_app.app_context():
        db.session.execute(text("ALTER TABLE users DROP CONSTRAINT IF EXISTS test_fault"))
        db.session.commit()


def test_values_after_a_known_sequence(metrics_app, clerk, tokens, blocked_first_name):
    client = metrics_app.test_client()
    before = scrape(client)

    def deliver(svix_id, kind, data):
        body = json.dumps(event(kind, data))
        return client.post("/api/webhooks/clerk", data=body, headers=signed_headers(body, svix_id=svix_id))

    assert deliver("msg_a", "user.created", user(1)).json == {"status": "processed"}
    assert deliver("msg_a", "user.created", user(1)).json == {"status": "duplicate"}
    assert deliver("msg_b", "user.created", user(2)).json == {"status": "processed"}
    assert deliver("msg_c", "user.updated", user(1, first_name="Blocked")).status_code == 500
    assert deliver("msg_d", "session.created", {"id": "sess_1", "object": "session"}).json == {"status": "ignored"}
    clerk.put(clerk_user("user_new", email="new@example.com"), user(1), user(3))
    assert client.get("/api/me", headers={"Authorization": f"Bearer {tokens.mint('user_new')}"}).status_code == 200
    with metrics_app.app_context():  # the dashboard's "first sign-ins in 24 h" counts the row the sign-in created
        provisioned = dict(db.session.execute(text("SELECT clerk_id, provisioned_at IS NOT NULL FROM users")).all())
    assert provisioned == {"user_new": True, "user_00001": False, "user_00002": False}
    sync = metrics_app.test_cli_runner().invoke(args=["sync-clerk", "sync"])  # 3 missing, 2 gone from Clerk
    assert sync.exit_code == 0, sync.output

    after = scrape(client)

    def counted(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    deliveries = "shop_webhook_deliveries_total"
    assert counted(deliveries, source="clerk", type="user.created", outcome="processed") == 2
    assert counted(deliveries, source="clerk", type="user.created", outcome="duplicate") == 1
    assert counted(deliveries, source="clerk", type="user.updated", outcome="failed") == 1
    assert counted(deliveries, source="clerk", type="session.created", outcome="ignored") == 1
    assert counted("shop_first_sign_in_provisionings_total") == 1
    webhook, me = "/api/webhooks/clerk", "/api/me"
    assert requests_counted(after, "POST", webhook, "200") - requests_counted(before, "POST", webhook, "200") == 4
    assert requests_counted(after, "POST", webhook, "500") - requests_counted(before, "POST", webhook, "500") == 1
    assert requests_counted(after, "GET", me, "200") - requests_counted(before, "GET", me, "200") == 1

    assert value(after, "shop_webhook_failed_events", source="clerk") == 1
    assert value(after, "shop_webhook_failed_events", source="stripe") == 0
    with metrics_app.app_context():
        newest = db.session.scalar(
            text("SELECT extract(epoch FROM max(created_at)) FROM webhook_events WHERE status <> 'failed'")
        )
    assert value(after, "shop_webhook_last_processed_timestamp_seconds", source="clerk") == pytest.approx(float(newest))
    assert 0 <= value(after, "shop_webhook_seconds_since_last_processed", source="clerk") < 60
    assert value(after, "shop_sync_last_success") == 1
    assert value(after, "shop_sync_last_run_timestamp_seconds") >= float(newest)
    assert value(after, "shop_sync_last_drift_users", kind="missing") == 1  # user_00003
    assert value(after, "shop_sync_last_drift_users", kind="gone") == 1  # user_00002
    assert value(after, "shop_sync_last_drift_users", kind="stale") == 0
    assert value(after, "shop_sync_last_failed_users") == 0


def test_a_route_label_is_the_url_rule_never_the_raw_path(metrics_app):
    client = metrics_app.test_client()
    client.get("/products/some-product-that-does-not-exist")
    client.get("/no/such/page/" + "x" * 50)
    client.open("/api/health", method="BREW")
    found = scrape(client)
    routes = {dict(labels).get("route") for (name, labels) in found if name.startswith("shop_http_request")}
    assert "/products/<slug:slug>" in routes and "<unmatched>" in routes
    assert not any(route and "x" * 50 in route for route in routes)
    methods = {dict(labels).get("method") for (name, labels) in found if name.startswith("shop_http_request")}
    assert "BREW" not in methods and "OTHER" in methods


def test_the_database_down_still_answers_and_says_so(make_app):
    app = make_app(METRICS_TOKEN=TOKEN, DATABASE_URL="postgresql://nobody@127.0.0.1:9/none")  # nothing listens on 9
    response = app.test_client().get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert value(samples(response.get_data(as_text=True)), "shop_metrics_database_up") == 0
