"""An e-mail address with a control character (CR, LF, TAB, NUL …) is stored as no address, on every
path into the mirror (webhook, first sign-in, `flask sync-clerk`), and the rest of the user still applies."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from shop import mirror
from shop.clerk.users import UserSnapshot
from shop.extensions import db
from shop.models import User
from tests.auth.test_provisioning import SECRET as PROVISIONING_SECRET
from tests.auth.test_provisioning import BackendAPI
from tests.support import clerk_user, event
from tests.sync.standin import SECRET_KEY, StandInClerk, serve

INJECTED = "a@example.com\r\nBcc: x@evil.example"


def stored(app, clerk_id: str) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.clerk_id == clerk_id))
        assert user is not None, clerk_id
        db.session.expunge(user)
        return user


def snapshot(clerk_id: str, email: str | None, updated_at: int = 1) -> UserSnapshot:
    return UserSnapshot.of(clerk_id, email, updated_at, first_name="Ada", last_name="Lovelace")


def apply_one(conn, given: UserSnapshot) -> mirror.Change:
    return mirror.apply_snapshot(conn, given)


def apply_batch(conn, given: UserSnapshot) -> mirror.Change:
    return mirror.apply_snapshots(conn, [given])[given.clerk_id]


@pytest.fixture(params=[apply_one, apply_batch], ids=["apply_snapshot", "apply_snapshots"])
def apply(request, app):
    def write(given: UserSnapshot) -> mirror.Change:
        with app.app_context():
            change = request.param(db.session.connection(), given)
            db.session.commit()
            return change

    return write


@pytest.mark.parametrize(
    "address",
    [
        INJECTED,
        "a@example.com\nb@example.com",
        "a@exam\rple.com",
        "a\t@example.com",
        "a\x00@example.com",
        "a\x1b@example.com",
        "a\x7f@example.com",
        "a\x85@example.com",
        "a\u2028@example.com",
    ],
    ids=["crlf-bcc", "lf", "cr", "tab", "nul", "escape", "del", "next-line", "line-separator"],
)
def test_the_address_is_stored_as_none_and_the_rest_applies(app, apply, address, caplog):
    caplog.set_level(logging.WARNING, logger="shop.mirror")
    assert apply(snapshot("user_ctl", address)) == mirror.Change.CREATED
    user = stored(app, "user_ctl")
    assert (user.email, user.email_key, user.first_name, user.last_name) == (None, None, "Ada", "Lovelace")
    assert "user_ctl" in caplog.text and "control character" in caplog.text
    assert "example.com" not in caplog.text  # the address is personal data: never logged


def test_a_control_character_takes_no_address_from_its_holder(app, apply):
    apply(snapshot("user_holder", "a@example.com"))
    apply(snapshot("user_ctl", INJECTED, updated_at=2))
    holder = stored(app, "user_holder")
    assert (holder.email, holder.needs_resync) == ("a@example.com", False)
    assert stored(app, "user_ctl").email is None


def test_an_update_with_a_control_character_drops_the_old_address(app, apply):
    apply(snapshot("user_ctl", "ctl@example.com"))
    assert apply(snapshot("user_ctl", INJECTED, updated_at=2)) == mirror.Change.UPDATED
    assert stored(app, "user_ctl").email is None
    assert apply(snapshot("user_ctl", INJECTED, updated_at=3)) == mirror.Change.UNCHANGED  # nothing left to write


def test_a_clean_address_is_kept_as_it_was(app, apply):
    apply(snapshot("user_ok", "Ada.Lovelace@Example.com"))
    assert stored(app, "user_ok").email == "Ada.Lovelace@Example.com"


def test_a_batch_previews_what_it_applies(app):
    """The drift check and the sync see the same row: no user stays "stale" for ever after a sync."""
    with app.app_context():
        conn = db.session.connection()
        assert mirror.preview_snapshots(conn, [snapshot("user_ctl", INJECTED)]) == {"user_ctl": mirror.Change.CREATED}
        mirror.apply_snapshots(conn, [snapshot("user_ctl", INJECTED)])
        assert mirror.preview_snapshots(conn, [snapshot("user_ctl", INJECTED)]) == {"user_ctl": mirror.Change.UNCHANGED}
        db.session.rollback()


# --- every path in -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user.created", "user.updated"])
def test_a_signed_webhook(app, deliver, kind):
    if kind == "user.updated":
        first = deliver(event("user.created", clerk_user("user_hook", email="hook@example.com", updated_at=1)))
        assert first.json == {"status": "processed"}
        assert stored(app, "user_hook").email == "hook@example.com"
    payload = clerk_user("user_hook", email=INJECTED, first_name="Grace", last_name="Hopper", updated_at=2)
    response = deliver(event(kind, payload))
    assert response.status_code == 200, response.data
    assert response.json == {"status": "processed"}
    user = stored(app, "user_hook")
    assert (user.email, user.email_key, user.first_name, user.last_name) == (None, None, "Grace", "Hopper")


def test_first_sign_in_provisioning(make_app, httpserver, tokens):
    api = BackendAPI(httpserver, {"user_new": clerk_user("user_new", email=INJECTED, first_name="Grace")})
    app = make_app(CLERK_SECRET_KEY=PROVISIONING_SECRET, CLERK_API_URL=api.url)
    client = app.test_client()
    client.set_cookie("__session", tokens.mint("user_new"))
    response = client.get("/api/me")
    assert response.status_code == 200, response.data  # signed in, with no address
    assert response.json["email"] is None
    user = stored(app, "user_new")
    assert (user.email, user.first_name) == (None, "Grace")


@pytest.fixture
def clerk():
    with serve(StandInClerk()) as standin:
        yield standin


def test_sync_clerk(make_app, clerk):
    clerk.put(
        clerk_user("user_synced", email=INJECTED, first_name="Grace", created_at=1),
        clerk_user("user_plain", email="plain@example.com", created_at=2),
    )
    app = make_app(CLERK_SECRET_KEY=SECRET_KEY, CLERK_API_URL=clerk.url, CLERK_API_BACKOFF_SECONDS="0.01")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["sync-clerk", "sync"])
    assert result.exit_code == 0, result.output
    user = stored(app, "user_synced")
    assert (user.email, user.first_name) == (None, "Grace")
    assert stored(app, "user_plain").email == "plain@example.com"
    status = runner.invoke(args=["sync-clerk", "status"])
    assert status.exit_code == 0, status.output  # in sync: the dropped address is not drift
