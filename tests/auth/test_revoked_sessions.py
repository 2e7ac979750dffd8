"""A session Clerk revoked, ended or removed is refused on the very next request, in every worker,
while the same user's other sessions keep working; the check is part of the signed-in user's one
SELECT, not a query of its own."""

from __future__ import annotations

import pytest
from sqlalchemy import event as sqlalchemy_event

from shop.extensions import db
from tests.auth.session_events import session_event
from tests.support import clerk_user, event

PAGE = {"Accept": "text/html", "Sec-Fetch-Dest": "document"}


@pytest.mark.parametrize("kind", ["session.revoked", "session.ended", "session.removed"])
def test_a_revoked_session_is_refused_while_the_users_other_session_works(
    app, client, make_app, make_user, deliver, tokens, kind
):
    make_user("user_two_devices", first_name="Ada")
    laptop, phone, other_worker = client, app.test_client(), make_app().test_client()
    laptop.set_cookie("__session", tokens.mint("user_two_devices", sid="sess_laptop"))
    phone.set_cookie("__session", phone_token := tokens.mint("user_two_devices", sid="sess_phone"))
    other_worker.set_cookie("__session", phone_token)  # the phone's next request reaches another worker
    for browser in (laptop, phone, other_worker):
        assert browser.get("/api/me").status_code == 200  # verified, and cached in both processes

    assert deliver(session_event(kind, "sess_phone")).json == {"status": "processed"}

    assert phone.get("/api/me").status_code == 401
    assert other_worker.get("/api/me").status_code == 401
    page = phone.get("/", headers=PAGE).get_data(as_text=True)
    assert "Sign out" not in page and "Ada" not in page  # a page is simply signed out
    assert phone.get("/orders", headers=PAGE).headers["Location"].startswith("/sign-in")
    bearer = app.test_client().get("/api/me", headers={"Authorization": f"Bearer {phone_token}"})
    assert bearer.status_code == 401
    # the laptop's session is another one: untouched
    assert laptop.get("/api/me").json["first_name"] == "Ada"
    assert "Sign out" in laptop.get("/", headers=PAGE).get_data(as_text=True)


def test_a_revocation_that_arrives_before_the_user_still_counts(app, client, deliver, tokens):
    """Webhooks come in any order: a session event for a user the mirror does not know yet is kept by its id."""
    assert deliver(session_event("session.revoked", "sess_early", user_id="user_late")).json == {"status": "processed"}
    user = clerk_user("user_late", email="late@example.com")
    assert deliver(event("user.created", user)).json == {"status": "processed"}
    client.set_cookie("__session", tokens.mint("user_late", sid="sess_early"))
    assert client.get("/api/me").status_code == 401
    client.set_cookie("__session", tokens.mint("user_late", sid="sess_later"))
    assert client.get("/api/me").status_code == 200


def test_the_revocation_is_read_in_the_signed_in_users_one_select(app, client, make_user, tokens):
    make_user("user_counted")
    client.set_cookie("__session", tokens.mint("user_counted", sid="sess_counted"))
    client.get("/api/me")  # warm: the token verified and cached
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sqlalchemy_event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get("/api/me").status_code == 200
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", record)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 1, reads  # /api/me asks nothing but the signed-in user's row
    assert "FROM users" in reads[0] and "revoked_sessions" in reads[0]
