"""The signed-in user's snapshot (shop.auth.signed_in): what it may miss for a few seconds, and what it never may."""

import time

from sqlalchemy import text

from shop.extensions import db
from tests.support import deleted_event, signed_headers

PAGE = {"Accept": "text/html"}


def change_elsewhere(app, sql: str) -> None:
    """A change made by another process (another worker, `flask shell`, psql): this one is not told."""
    with app.app_context():
        db.session.execute(text(sql))
        db.session.commit()


def test_a_profile_change_made_elsewhere_shows_once_the_snapshot_expires(make_app, sign_in):
    app = make_app(SIGNED_IN_USER_CACHE_SECONDS="0.5")
    client = app.test_client()
    sign_in("user_a", as_client=client, first_name="Ada")
    assert client.get("/api/me").json["first_name"] == "Ada"
    change_elsewhere(app, "UPDATE users SET first_name = 'Grace' WHERE clerk_id = 'user_a'")
    assert client.get("/api/me").json["first_name"] == "Ada"  # the snapshot, still fresh
    time.sleep(0.6)
    assert client.get("/api/me").json["first_name"] == "Grace"


def test_a_demoted_admin_loses_staff_pages_with_the_next_request(app, client, sign_in):
    sign_in("user_staff")
    change_elsewhere(app, "UPDATE users SET role = 'ADMIN' WHERE clerk_id = 'user_staff'")
    assert client.get("/admin/").status_code == 200  # promoted: the staff check reads the row itself
    assert b">Admin</a>" in client.get("/", headers=PAGE).data  # …and refreshed the snapshot
    change_elsewhere(app, "UPDATE users SET role = 'CLIENT' WHERE clerk_id = 'user_staff'")
    assert client.get("/admin/").status_code == 403
    assert client.get("/admin/orders").status_code == 403


def test_a_deletion_made_elsewhere_signs_out_once_the_snapshot_expires(make_app, sign_in):
    app = make_app(SIGNED_IN_USER_CACHE_SECONDS="0.5")
    client = app.test_client()
    sign_in("user_a", as_client=client)
    assert client.get("/api/me").status_code == 200
    change_elsewhere(
        app, "UPDATE users SET deleted_at = now(), email = NULL, email_key = NULL WHERE clerk_id = 'user_a'"
    )
    time.sleep(0.6)
    assert client.get("/api/me").status_code == 401


def test_a_deletion_by_webhook_in_this_process_signs_out_at_once(app, client, sign_in):
    sign_in("user_a")
    assert client.get("/api/me").status_code == 200
    body = deleted_event_body("user_a")
    assert client.post("/api/webhooks/clerk", data=body, headers=signed_headers(body)).status_code == 200
    assert client.get("/api/me").status_code == 401


def test_no_snapshot_is_kept_when_the_cache_is_off(make_app, sign_in):
    app = make_app(SIGNED_IN_USER_CACHE_SECONDS="0")
    client = app.test_client()
    sign_in("user_a", as_client=client, first_name="Ada")
    client.get("/api/me")
    change_elsewhere(app, "UPDATE users SET first_name = 'Grace' WHERE clerk_id = 'user_a'")
    assert client.get("/api/me").json["first_name"] == "Grace"


def deleted_event_body(clerk_id: str) -> str:
    import json

    return json.dumps(deleted_event(clerk_id))
