"""Processing failures: 500 so Svix retries, nothing half-written, recorded when the database allows,
and replayable once the cause is fixed."""

import json
import threading

import flask_migrate
import psycopg
import pytest
import requests
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from shop import create_app
from shop.extensions import db
from shop.models import User, WebhookEvent
from tests.conftest import settings
from tests.support import clerk_user, event, live_server, signed_headers, wait_for_a_lock_wait


def body_of(clerk_id, **fields):
    return json.dumps(event("user.updated", clerk_user(clerk_id, **fields)))


def rows(app, model):
    with app.app_context():
        db.session.expire_all()
        return db.session.scalars(select(model).order_by(model.id)).all()


@pytest.fixture
def blocked_first_name(app):
    """A database-level fault: any row with first_name 'Blocked' is refused, until the fixture's fix()."""
    with app.app_context():
        db.session.execute(
            text("ALTER TABLE users ADD CONSTRAINT test_fault CHECK (first_name <> 'Blocked') NOT VALID")
        )
        db.session.commit()

    def fix():
        with app.app_context():
            db.session.execute(text("ALTER TABLE users DROP CONSTRAINT test_fault"))
            db.session.commit()

    yield fix
    with app.app_context():
        db.session.execute(text("ALTER TABLE users DROP CONSTRAINT IF EXISTS test_fault"))
        db.session.commit()


def test_failure_is_500_recorded_and_retried_by_svix(app, client, blocked_first_name):
    body = body_of("user_a", first_name="Blocked")
    response = client.post("/api/webhooks/clerk", data=body, headers=signed_headers(body, svix_id="msg_fault"))
    assert response.status_code == 500
    assert "retried" in response.json["error"]
    assert rows(app, User) == []
    [failed] = rows(app, WebhookEvent)
    assert (failed.svix_id, failed.status, failed.attempts) == ("msg_fault", "failed", 1)
    assert "CheckViolation" in failed.error
    assert failed.payload == json.loads(body)

    blocked_first_name()
    retry = client.post("/api/webhooks/clerk", data=body, headers=signed_headers(body, svix_id="msg_fault"))
    assert retry.json == {"status": "processed"}
    [done] = rows(app, WebhookEvent)
    assert (done.status, done.attempts, done.error) == ("processed", 2, None)
    assert rows(app, User)[0].first_name == "Blocked"


def test_replay_failed_events_through_the_same_path(app, client, runner, blocked_first_name):
    for index in range(2):
        body = body_of(f"user_{index}", first_name="Blocked")
        client.post("/api/webhooks/clerk", data=body, headers=signed_headers(body, svix_id=f"msg_{index}"))
    result = runner.invoke(args=["webhooks", "list", "--status", "failed"])
    assert "msg_0" in result.output and "msg_1" in result.output and "CheckViolation" in result.output

    still_broken = runner.invoke(args=["webhooks", "replay", "msg_0"])
    assert still_broken.exit_code == 1
    assert "failed again" in still_broken.output

    blocked_first_name()
    result = runner.invoke(args=["webhooks", "replay", "--failed"])
    assert result.exit_code == 0, result.output
    assert "msg_0: processed" in result.output and "msg_1: processed" in result.output
    assert {u.clerk_id for u in rows(app, User)} == {"user_0", "user_1"}
    assert {e.status for e in rows(app, WebhookEvent)} == {"processed"}

    again = runner.invoke(args=["webhooks", "replay", "msg_0", "msg_unknown"])
    assert "msg_0: duplicate" in again.output
    assert "msg_unknown: no such webhook event" in again.output
    assert again.exit_code == 1


def test_replay_needs_ids_or_failed(runner):
    assert runner.invoke(args=["webhooks", "replay"]).exit_code == 2
    assert runner.invoke(args=["webhooks", "replay", "--failed"]).output.strip() == "No failed webhook events."


def test_list_when_empty_and_limit(runner, deliver):
    assert runner.invoke(args=["webhooks", "list"]).output.strip() == "No webhook events."
    for index in range(3):
        deliver(event("user.created", clerk_user(f"user_{index}")), svix_id=f"msg_list_{index}")
    output = runner.invoke(args=["webhooks", "list", "--limit", "2"]).output
    assert output.count("processed") == 2
    assert output.index("msg_list_2") < output.index("msg_list_1")  # newest first


# --- the database itself goes away in the middle of a delivery ---------------------------------------------


def test_database_stopped_mid_delivery(stoppable_postgres):
    app = create_app(settings(stoppable_postgres.url))
    with app.app_context():
        flask_migrate.upgrade()
    client = app.test_client()
    created = json.dumps(event("user.created", clerk_user("user_a", first_name="Before", updated_at=1)))
    assert client.post("/api/webhooks/clerk", data=created, headers=signed_headers(created)).status_code == 200

    update = body_of("user_a", first_name="After", updated_at=2)
    holder = psycopg.connect(stoppable_postgres.libpq)
    holder.execute("SELECT 1 FROM users WHERE clerk_id = 'user_a' FOR UPDATE")  # the delivery will wait here
    answers: list[requests.Response] = []
    with live_server(app) as url:
        sender = threading.Thread(
            target=lambda: answers.append(
                requests.post(
                    f"{url}/api/webhooks/clerk",
                    data=update,
                    headers=signed_headers(update, svix_id="msg_mid"),
                    timeout=30,
                )
            )
        )
        sender.start()
        wait_for_a_lock_wait(stoppable_postgres.url)
        stoppable_postgres.stop()  # the delivery's transaction has its event row written, not committed
        sender.join(30)
        holder.close()
        assert answers[0].status_code == 500

        health = requests.get(f"{url}/api/test-db", timeout=30)
        assert health.status_code == 503
        assert health.json()["status"] == "error"
        assert "host=" not in health.text and "postgres:" not in health.text

        stoppable_postgres.start()
        with app.app_context():
            assert db.session.scalars(select(WebhookEvent.svix_id)).all() == [
                db.session.scalars(select(WebhookEvent.svix_id)).first()
            ]  # only the creation's event: nothing of msg_mid was committed
            assert db.session.scalar(select(User.first_name)) == "Before"

        retried = requests.post(
            f"{url}/api/webhooks/clerk", data=update, headers=signed_headers(update, svix_id="msg_mid"), timeout=30
        )
        assert retried.json() == {"status": "processed"}
        again = requests.post(
            f"{url}/api/webhooks/clerk", data=update, headers=signed_headers(update, svix_id="msg_mid"), timeout=30
        )
        assert again.json() == {"status": "duplicate"}
    with app.app_context():
        assert db.session.scalar(select(User.first_name)) == "After"
        assert db.session.scalars(select(WebhookEvent.svix_id).where(WebhookEvent.svix_id == "msg_mid")).all() == [
            "msg_mid"
        ]
        db.engine.dispose()
    assert make_url(stoppable_postgres.url).database == "postgres"
