"""Clerk's `session.revoked|ended|removed` webhooks through the inbox: stored by session id with one
effect whatever the duplicates, replays and order; malformed ones answered 400 and recorded as
failed, never a 500; and the table kept small (a day of revocations, pruned in bounded batches)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from shop.extensions import db
from shop.revoked_sessions import PRUNE_BATCH
from tests.auth.session_events import session_event
from tests.support import clerk_user, event, signed_headers

DAY_MS = 86_400_000


def revoked(app) -> dict[str, tuple]:
    """session id → (user, status, keep_until) of every stored revocation."""
    with app.app_context():
        rows = db.session.execute(
            text("SELECT session_id, clerk_user_id, status, keep_until FROM revoked_sessions")
        ).all()
        db.session.rollback()
        return {row[0]: tuple(row[1:]) for row in rows}


def recorded(app, svix_id: str) -> tuple | None:
    with app.app_context():
        row = db.session.execute(
            text("SELECT type, status, clerk_user_id, error, attempts FROM webhook_events WHERE svix_id = :id"),
            {"id": svix_id},
        ).first()
        db.session.rollback()
        return tuple(row) if row else None


def test_a_revocation_is_stored_by_session_id_and_recorded(app, deliver):
    response = deliver(session_event("session.revoked", "sess_a", user_id="user_a"), svix_id="msg_a")
    assert (response.status_code, response.json) == (200, {"status": "processed"})
    [(user, status, keep_until)] = revoked(app).values()
    assert (user, status) == ("user_a", "revoked")
    assert timedelta(hours=23) < keep_until - datetime.now(UTC) <= timedelta(days=1)
    assert recorded(app, "msg_a") == ("session.revoked", "processed", "user_a", None, 1)


def test_duplicates_and_replays_have_one_effect(app, deliver):
    body = session_event("session.revoked", "sess_dup", user_id="user_a")
    assert deliver(body, svix_id="msg_dup").json == {"status": "processed"}
    first = revoked(app)
    assert deliver(body, svix_id="msg_dup").json == {"status": "duplicate"}  # Svix's retry, the dashboard's replay
    # Clerk's later word on the same session (another delivery): the session stays refused, one row
    later = session_event("session.removed", "sess_dup", user_id="user_a")
    assert deliver(later, svix_id="msg_later").json == {"status": "processed"}
    assert revoked(app) == first
    assert recorded(app, "msg_dup")[4] == 1


def test_order_does_not_matter(app, client, deliver, tokens):
    """A revocation before the user exists, and a `session.created` after the revocation: still refused."""
    assert deliver(session_event("session.ended", "sess_x", user_id="user_new")).json == {"status": "processed"}
    created = session_event("session.created", "sess_x", user_id="user_new", status="active")
    assert deliver(created).json == {"status": "ignored"}  # recorded, changes nothing
    assert deliver(event("user.created", clerk_user("user_new", email="new@example.com"))).status_code == 200
    assert set(revoked(app)) == {"sess_x"}
    client.set_cookie("__session", tokens.mint("user_new", sid="sess_x"))
    assert client.get("/api/me").status_code == 401


def test_a_session_event_without_a_user_is_kept_by_its_id(app, deliver):
    data = session_event("session.removed", "sess_nobody", user_id=None)
    del data["data"]["user_id"]
    assert deliver(data).json == {"status": "processed"}
    assert revoked(app) == {"sess_nobody": (None, "removed", revoked(app)["sess_nobody"][2])}


MALFORMED = {
    "id missing": {"id": ...},
    "id null": {"id": None},
    "id a number": {"id": 42},
    "id empty": {"id": ""},
    "id blank": {"id": "   "},
    "id too long": {"id": "sess_" + "x" * 80},
    "id a list": {"id": ["sess_a"]},
    "user_id a number": {"user_id": 7},
    "user_id an object": {"user_id": {"id": "user_a"}},
    "user_id too long": {"user_id": "user_" + "x" * 80},
    "updated_at a string": {"updated_at": "1700000000000"},
    "updated_at a bool": {"updated_at": True},
    "updated_at a float": {"updated_at": 1.5},
    "updated_at negative": {"updated_at": -1},
    "updated_at past bigint": {"updated_at": 2**64},
    "not a session": {"object": "user"},
}


@pytest.mark.parametrize("name", list(MALFORMED))
@pytest.mark.parametrize("kind", ["session.revoked", "session.ended", "session.removed"])
def test_a_malformed_session_event_is_400_and_recorded_failed(app, deliver, kind, name):
    payload = session_event(kind, "sess_bad", user_id="user_a")
    for field, value in MALFORMED[name].items():
        if value is ...:
            del payload["data"][field]
        else:
            payload["data"][field] = value
    response = deliver(payload, svix_id=f"msg_bad_{kind}")
    assert response.status_code == 400
    assert response.json["error"].startswith(f"Not a Clerk event: {kind}: ")
    assert recorded(app, f"msg_bad_{kind}")[:2] == (kind, "failed")
    assert revoked(app) == {}


@pytest.mark.parametrize("data", [[], "sess_a", None, 42])
def test_session_data_that_is_not_an_object_is_400(app, deliver, data):
    response = deliver({"object": "event", "type": "session.revoked", "data": data}, svix_id="msg_not_object")
    assert response.status_code == 400
    assert recorded(app, "msg_not_object")[1] == "failed"


def test_a_failed_session_event_is_replayed_through_the_same_path(app, client, runner):
    """A database fault: 500 (Svix retries), recorded failed; once fixed, `flask webhooks replay` applies it."""
    with app.app_context():
        db.session.execute(
            text("ALTER TABLE revoked_sessions ADD CONSTRAINT test_fault CHECK (session_id <> 'sess_f') NOT VALID")
        )
        db.session.commit()
    body = json.dumps(session_event("session.revoked", "sess_f", user_id="user_a"))
    try:
        response = client.post("/api/webhooks/clerk", data=body, headers=signed_headers(body, svix_id="msg_f"))
        assert response.status_code == 500
        assert recorded(app, "msg_f")[1] == "failed" and revoked(app) == {}
    finally:
        with app.app_context():
            db.session.execute(text("ALTER TABLE revoked_sessions DROP CONSTRAINT IF EXISTS test_fault"))
            db.session.commit()
    result = runner.invoke(args=["webhooks", "replay", "msg_f"])
    assert result.exit_code == 0, result.output
    assert recorded(app, "msg_f")[1] == "processed"
    assert set(revoked(app)) == {"sess_f"}


# --- kept small -------------------------------------------------------------------------------------


def add_lapsed(app, count: int) -> None:
    """Revocations whose day has passed (as if they had arrived days ago)."""
    with app.app_context():
        db.session.execute(
            text(
                "INSERT INTO revoked_sessions (session_id, status, keep_until) "
                "SELECT 'sess_old_' || g, 'revoked', now() - interval '1 hour' FROM generate_series(1, :n) g"
            ),
            {"n": count},
        )
        db.session.commit()


def test_lapsed_revocations_are_pruned_in_bounded_batches(app, deliver):
    add_lapsed(app, PRUNE_BATCH + 50)
    assert deliver(session_event("session.revoked", "sess_new_1")).json == {"status": "processed"}
    left = revoked(app)
    assert "sess_new_1" in left
    assert len(left) == 50 + 1  # one delivery prunes at most PRUNE_BATCH rows: its cost stays small
    assert deliver(session_event("session.revoked", "sess_new_2")).json == {"status": "processed"}
    assert set(revoked(app)) == {"sess_new_1", "sess_new_2"}


def test_a_session_that_ended_over_a_day_ago_is_not_kept(app, deliver):
    """Its tokens (60 s) lapsed long ago: a late delivery or a replay leaves nothing behind for long."""
    old = session_event("session.revoked", "sess_stale", updated_at=1_700_000_000_000)
    assert deliver(old).json == {"status": "processed"}
    assert "sess_stale" not in revoked(app)


def test_a_time_in_the_future_keeps_a_row_one_day_at_most(app, deliver):
    future = session_event("session.revoked", "sess_future", updated_at=2**62)
    assert deliver(future).json == {"status": "processed"}
    keep_until = revoked(app)["sess_future"][2]
    assert keep_until - datetime.now(UTC) <= timedelta(days=1)
