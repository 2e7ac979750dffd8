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
    assert client.get("/api/me").json == {
        "error": "The shop cannot reach its database right now. Please retry in a moment."
    }
    assert client.get("/api/health").status_code == 503

    stoppable_postgres.start()
    assert client.get("/account").status_code == 200  # pre-ping replaced the dead pooled connections
    assert client.get("/api/health").status_code == 200
    with app.app_context():
        db.engine.dispose()
