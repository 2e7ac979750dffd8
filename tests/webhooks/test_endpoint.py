"""POST /api/webhooks/clerk: Clerk's real events, and every malformed, forged or oversized request."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from shop.extensions import db
from shop.models import User, WebhookEvent
from tests.support import OTHER_WEBHOOK_SECRET, WEBHOOK_SECRET, clerk_user, event, signed_headers, vector

CREATED = vector("clerk-docs_webhook_user_created.json")


def users(app):
    with app.app_context():
        return db.session.scalars(select(User).order_by(User.id)).all()


def events(app):
    with app.app_context():
        return db.session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)).all()


def test_clerk_docs_user_created_is_mirrored(app, deliver):
    response = deliver(CREATED, svix_id="msg_docs")
    assert response.status_code == 200
    assert response.json == {"status": "processed"}
    [user] = users(app)
    assert (user.clerk_id, user.email, user.first_name, user.last_name) == (
        "user_29w83sxmDNGwOuEthce5gg56FcC",
        "example@example.org",
        "Example",
        "Example",
    )
    assert user.image_url == "https://img.clerk.com/xxxxxx"
    assert user.clerk_updated_at == 1654012591835
    [logged] = events(app)
    assert (logged.svix_id, logged.type, logged.status, logged.clerk_user_id) == (
        "msg_docs",
        "user.created",
        "processed",
        "user_29w83sxmDNGwOuEthce5gg56FcC",
    )
    assert logged.payload == CREATED
    assert logged.processed_at is not None


def test_openapi_events_created_updated_deleted(app, deliver):
    for name in ("created", "updated", "deleted"):
        response = deliver(vector(f"openapi-specs_webhook_user_{name}.json"))
        assert response.json == {"status": "processed"}, name
        [user] = users(app)
        if name == "updated":
            assert (user.email, user.last_name, user.image_url) == (None, "Doe Updated", "https://img.clerk.com/yyyyy")
    assert user.deleted_at is not None
    assert (user.email, user.first_name, user.last_name) == (None, None, None)


def test_raw_body_exactly_as_clerk_sent_it(app, client):
    body = json.dumps(CREATED, indent=4, ensure_ascii=False)  # whitespace a re-serialization would lose
    response = client.post("/api/webhooks/clerk", data=body, headers=signed_headers(body))
    assert response.json == {"status": "processed"}


def test_unknown_event_type_is_ignored_and_recorded(app, deliver):
    response = deliver(event("session.created", {"id": "sess_1", "user_id": "user_x"}))
    assert (response.status_code, response.json) == (200, {"status": "ignored"})
    [logged] = events(app)
    assert (logged.type, logged.status) == ("session.created", "ignored")
    assert users(app) == []


def test_duplicate_delivery_has_one_effect(app, deliver):
    assert deliver(CREATED, svix_id="msg_dup").json == {"status": "processed"}
    with app.app_context():
        user = db.session.scalar(select(User))
        user.first_name = "Changed locally"  # a second effect would overwrite this
        db.session.commit()
    assert deliver(CREATED, svix_id="msg_dup").json == {"status": "duplicate"}
    assert users(app)[0].first_name == "Changed locally"
    assert len(events(app)) == 1


def test_same_event_under_a_new_svix_id_is_applied_again_harmlessly(app, deliver):
    deliver(CREATED)
    assert deliver(CREATED).json == {"status": "processed"}
    assert len(users(app)) == 1
    assert len(events(app)) == 2


# --- refused requests: none is a 500, none writes a user -------------------------------------------------


def assert_refused(app, response, status, error=None):
    assert response.status_code == status
    if error is not None:
        assert response.json == {"error": error}
    assert users(app) == []


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_missing_each_header(app, client, missing):
    body = json.dumps(CREATED)
    headers = signed_headers(body)
    del headers[missing]
    response = client.post("/api/webhooks/clerk", data=body, headers=headers)
    assert_refused(app, response, 400, "Missing svix headers")
    assert events(app) == []


def test_wrong_secret(app, deliver):
    assert_refused(app, deliver(CREATED, secret=OTHER_WEBHOOK_SECRET), 400, "Invalid signature")


def test_tampered_body(app, client):
    body = json.dumps(CREATED)
    headers = signed_headers(body)
    response = client.post("/api/webhooks/clerk", data=body.replace("Example", "Mallory"), headers=headers)
    assert_refused(app, response, 400, "Invalid signature")
    assert events(app) == []


@pytest.mark.parametrize("signature", ["garbage", "v1,", "v1,!!!"])
def test_garbage_signatures(app, client, signature):
    body = json.dumps(CREATED)
    headers = {**signed_headers(body), "svix-signature": signature}
    assert_refused(app, client.post("/api/webhooks/clerk", data=body, headers=headers), 400, "Invalid signature")


@pytest.mark.parametrize("minutes", [-6, 6])
def test_timestamp_six_minutes_off(app, deliver, minutes):
    response = deliver(CREATED, timestamp=datetime.now(UTC) + timedelta(minutes=minutes))
    assert_refused(app, response, 400, "Invalid signature")


@pytest.mark.parametrize("timestamp", ["soon", "", "1e400", "nan"])
def test_unparseable_timestamp(app, client, timestamp):
    body = json.dumps(CREATED)
    headers = {**signed_headers(body), "svix-timestamp": timestamp}
    response = client.post("/api/webhooks/clerk", data=body, headers=headers)
    assert response.status_code == 400
    assert users(app) == []


def test_body_not_utf8(app, client):
    body = b'{"type": "user.created", "data": "\xff"}'
    headers = signed_headers(b"{}")
    assert_refused(app, client.post("/api/webhooks/clerk", data=body, headers=headers), 400, "Invalid signature")


def test_signed_but_not_json_is_recorded_as_failed(app, deliver):
    response = deliver("this is not json", svix_id="msg_notjson")
    assert_refused(app, response, 400, "Body is not JSON")
    [logged] = events(app)
    assert (logged.svix_id, logged.status, logged.payload) == ("msg_notjson", "failed", None)
    assert "not JSON" in logged.error


def test_signed_json_with_nul_character(app, deliver):
    body = json.dumps(clerk_user("user_a", first_name="nul\u0000byte"))
    response = deliver(json.dumps({"type": "user.created", "data": json.loads(body)}))
    error = "Not a Clerk event: the body has text that cannot be stored (a NUL character or a lone surrogate)"
    assert_refused(app, response, 400, error)


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2, 3],
        {"hello": "world"},
        {"type": "user.created", "data": "user_a"},
        {"type": "user.created", "data": {"id": "user_a"}},
        {"type": "user.deleted", "data": {"object": "user", "deleted": True}},
        {"type": "user.deleted", "data": {"id": None}},
    ],
    ids=["array", "no-type", "data-string", "user-without-updated_at", "deleted-without-id", "deleted-null-id"],
)
def test_json_that_is_not_a_clerk_event(app, deliver, payload):
    response = deliver(payload, svix_id="msg_bad")
    assert response.status_code == 400
    assert response.json["error"].startswith("Not a Clerk event")
    assert users(app) == []
    [logged] = events(app)
    assert (logged.status, logged.payload) == ("failed", payload)


def test_body_over_one_mebibyte(app, deliver):
    body = json.dumps(event("user.created", clerk_user("user_big", padding="x" * (2 * 1024 * 1024))))
    assert_refused(app, deliver(body), 413, "Payload too large")
    assert events(app) == []


def test_no_secret_configured(make_app):
    app = make_app(CLERK_WEBHOOK_SECRET="")
    body = json.dumps(CREATED)
    response = app.test_client().post("/api/webhooks/clerk", data=body, headers=signed_headers(body))
    assert response.status_code == 503
    assert "not configured" in response.json["error"]
    assert users(app) == []


def test_rotation_with_two_secrets(make_app):
    app = make_app(CLERK_WEBHOOK_SECRET=f"{OTHER_WEBHOOK_SECRET} {WEBHOOK_SECRET}")
    client = app.test_client()
    for secret, user_id in ((WEBHOOK_SECRET, "user_one"), (OTHER_WEBHOOK_SECRET, "user_two")):
        body = json.dumps(event("user.created", clerk_user(user_id)))
        response = client.post("/api/webhooks/clerk", data=body, headers=signed_headers(body, secret=secret))
        assert response.json == {"status": "processed"}
    assert {u.clerk_id for u in users(app)} == {"user_one", "user_two"}


def test_get_is_not_allowed(client):
    assert client.get("/api/webhooks/clerk").status_code == 405


def test_log_line_has_no_email(app, deliver, caplog):
    caplog.set_level("INFO", logger="shop")
    deliver(CREATED, svix_id="msg_logged")
    [line] = [r.getMessage() for r in caplog.records if "msg_logged" in r.getMessage()]
    assert "type=user.created" in line and "user=user_29w83sxmDNGwOuEthce5gg56FcC" in line
    assert "outcome=processed" in line and "ms=" in line
    assert "example@example.org" not in caplog.text


def test_user_count_of_the_event_log(app, deliver):
    for index in range(3):
        deliver(event("user.created", clerk_user(f"user_{index}", email=f"u{index}@example.com")))
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 3
