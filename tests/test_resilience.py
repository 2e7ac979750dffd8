"""The database goes away and comes back: pages answer 503, then recover by themselves."""

import json

import flask_migrate

from shop import create_app
from shop.extensions import db
from tests.conftest import settings
from tests.support import clerk_user, event, signed_headers


def test_pages_answer_503_while_the_database_is_down_then_recover(stoppable_postgres, tokens):
    app = create_app(settings(stoppable_postgres.url))
    with app.app_context():
        flask_migrate.upgrade()
    client = app.test_client()
    client.set_cookie("__session", tokens.mint("user_a"))

    body = json.dumps(event("user.created", clerk_user("user_a")))
    assert client.post("/api/webhooks/clerk", data=body, headers=signed_headers(body)).status_code == 200
    assert client.get("/account").status_code == 200

    stoppable_postgres.stop()
    page = client.get("/account")
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "5"
    assert b"cannot reach its database" in page.data and b"Traceback" not in page.data
    assert client.get("/api/orders").json == {
        "error": "The shop cannot reach its database right now. Please retry in a moment."
    }
    # Who is signed in comes from the database, so it cannot be told either: 503, not "signed out".
    me = client.get("/api/me")
    assert me.status_code == 503 and "error" in me.json
    assert client.get("/api/health").status_code == 503

    stoppable_postgres.start()
    assert client.get("/account").status_code == 200  # pre-ping replaced the dead pooled connections
    assert client.get("/api/health").status_code == 200
    with app.app_context():
        db.engine.dispose()


def test_the_database_going_away_in_the_middle_of_a_signed_in_request_gives_the_503_page(stoppable_postgres, tokens):
    """The shopper was loaded, then the database went away: the 503 page must not need the database
    to draw the header (the rollback expires the loaded user; reloading it would fail again)."""
    from shop import mirror
    from shop.clerk.users import parse_user

    app = create_app(settings(stoppable_postgres.url))
    with app.app_context():
        flask_migrate.upgrade()
        mirror.apply_snapshot(db.session.connection(), parse_user(clerk_user("user_b", email="b@example.com")))
        db.session.commit()
    stop_now = {"armed": False}

    @app.before_request
    def database_goes_away():  # runs after the auth hook has loaded the signed-in user
        if stop_now["armed"]:
            stop_now["armed"] = False
            stoppable_postgres.stop()

    client = app.test_client()
    client.set_cookie("__session", tokens.mint("user_b"))
    assert client.get("/cart").status_code == 200

    stop_now["armed"] = True
    page = client.get("/cart")
    assert page.status_code == 503
    assert b"cannot reach its database" in page.data

    stoppable_postgres.start()
    assert client.get("/cart").status_code == 200
    with app.app_context():
        db.engine.dispose()
