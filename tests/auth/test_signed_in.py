"""The signed-in user is read from the mirror on every request: a change made by any process shows at once."""

import json

from sqlalchemy import text

from shop.extensions import db
from tests.support import deleted_event, signed_headers

PAGE = {"Accept": "text/html"}


def change_elsewhere(app, sql: str) -> None:
    """A change made by another process (another worker, `flask shell`, psql): this one is not told."""
    with app.app_context():
        db.session.execute(text(sql))
        db.session.commit()


def test_a_profile_change_made_elsewhere_shows_with_the_next_request(app, client, sign_in):
    sign_in("user_a", first_name="Ada")
    assert client.get("/api/me").json["first_name"] == "Ada"
    change_elsewhere(app, "UPDATE users SET first_name = 'Grace' WHERE clerk_id = 'user_a'")
    assert client.get("/api/me").json["first_name"] == "Grace"


def test_a_promotion_and_a_demotion_made_elsewhere_count_with_the_next_request(app, client, sign_in):
    sign_in("user_staff")
    change_elsewhere(app, "UPDATE users SET role = 'ADMIN' WHERE clerk_id = 'user_staff'")
    assert client.get("/admin/").status_code == 200
    assert client.get("/api/me").json["role"] == "ADMIN"
    assert b">Admin</a>" in client.get("/", headers=PAGE).data
    change_elsewhere(app, "UPDATE users SET role = 'CLIENT' WHERE clerk_id = 'user_staff'")
    assert client.get("/admin/").status_code == 403
    assert client.get("/admin/orders").status_code == 403
    assert client.get("/api/me").json["role"] == "CLIENT"
    assert b">Admin</a>" not in client.get("/", headers=PAGE).data


def test_a_deletion_made_elsewhere_signs_out_with_the_next_request(app, client, sign_in):
    sign_in("user_a")
    assert client.get("/api/me").status_code == 200
    change_elsewhere(
        app, "UPDATE users SET deleted_at = now(), email = NULL, email_key = NULL WHERE clerk_id = 'user_a'"
    )
    assert client.get("/api/me").status_code == 401


def test_a_deletion_by_webhook_signs_out_in_every_worker(app, client, make_app, sign_in, tokens):
    """Two apps are two worker processes: the webhook reaches one, the shopper's next request the other."""
    other_worker = make_app().test_client()
    sign_in("user_a")
    other_worker.set_cookie("__session", tokens.mint("user_a"))
    assert other_worker.get("/api/me").status_code == 200
    body = json.dumps(deleted_event("user_a"))
    assert client.post("/api/webhooks/clerk", data=body, headers=signed_headers(body)).status_code == 200
    assert client.get("/api/me").status_code == 401
    assert other_worker.get("/api/me").status_code == 401
