"""Repair on sign-in: a `needs_resync` user is fetched from Clerk (a stand-in on 127.0.0.1) in the background."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from werkzeug.wrappers import Response

from shop import mirror
from shop.auth.resync import resyncer
from shop.clerk.users import parse_user
from shop.extensions import db
from shop.metrics import SIGN_IN_RESYNCS
from shop.models import User
from tests.support import clerk_user, wait_for
from tests.sync.standin import SECRET_KEY, StandInClerk, serve

OLD = 1_700_000_000_000


@pytest.fixture
def clerk():
    with serve(StandInClerk()) as standin:
        yield standin


@pytest.fixture
def resync_app(make_app, clerk):
    return make_app(CLERK_SECRET_KEY=SECRET_KEY, CLERK_API_URL=clerk.url)


def write(app, *users):
    with app.app_context():
        for user in users:
            mirror.apply_snapshot(db.session.connection(), parse_user(user))
        db.session.commit()


def stored(app, clerk_id: str) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.clerk_id == clerk_id))
        db.session.expunge_all()
        return user


def repairs_counted(outcome: str) -> float:
    """This process's count of sign-in repairs with `outcome` (the counter's own samples)."""
    samples = [sample for family in SIGN_IN_RESYNCS.collect() for sample in family.samples]
    return next((s.value for s in samples if s.name.endswith("_total") and s.labels == {"outcome": outcome}), 0.0)


def drained(app) -> None:
    """Every repair asked for so far has finished: the single background thread runs them in order."""
    with app.app_context():
        resyncer().executor.submit(lambda: None).result(timeout=30)


def stale_user(app, clerk) -> None:
    """user_ada lost her e-mail to user_bob (the mirror marks her row); Clerk has her new address."""
    write(app, clerk_user("user_ada", email="shared@example.com", updated_at=OLD))
    write(app, clerk_user("user_bob", email="shared@example.com", updated_at=OLD + 5))
    clerk.put(clerk_user("user_ada", email="ada-new@example.com", updated_at=OLD + 3))


def test_a_stale_user_is_repaired_after_her_next_signed_in_request(resync_app, clerk, tokens):
    stale_user(resync_app, clerk)
    before = stored(resync_app, "user_ada")
    assert before.needs_resync and before.email is None
    repairs_before = repairs_counted("updated")

    client = resync_app.test_client()
    client.set_cookie("__session", tokens.mint("user_ada"))
    first = client.get("/api/me")
    assert first.status_code == 200 and first.json["email"] is None  # served at once, with the row as it was

    repaired = wait_for(
        lambda: (user := stored(resync_app, "user_ada")) and not user.needs_resync and user,
        timeout=15,
        what="the user repaired",
    )
    assert repaired.email == "ada-new@example.com" and repaired.deleted_at is None
    assert client.get("/api/me").json["email"] == "ada-new@example.com"
    assert stored(resync_app, "user_bob").email == "shared@example.com"  # the other user keeps the address
    assert clerk.user_requests() == ["user_ada"]
    wait_for(lambda: repairs_counted("updated") == repairs_before + 1, timeout=15, what="the repair's end")


def test_a_stale_user_clerk_no_longer_has_is_tombstoned(resync_app, clerk, tokens):
    stale_user(resync_app, clerk)
    clerk.delete("user_ada")
    client = resync_app.test_client()
    client.set_cookie("__session", tokens.mint("user_ada"))
    client.get("/api/me")
    wait_for(lambda: stored(resync_app, "user_ada").deleted_at is not None, timeout=15, what="the tombstone")


def test_attempts_are_limited_per_user_while_clerk_fails(resync_app, clerk, tokens):
    stale_user(resync_app, clerk)
    clerk.faults = [(lambda path: True, Response("down", status=503)) for _ in range(100)]
    client = resync_app.test_client()
    client.set_cookie("__session", tokens.mint("user_ada"))

    assert client.get("/api/me").status_code == 200
    drained(resync_app)
    calls = len(clerk.requests)
    assert calls >= 1  # one attempt (with the Backend API client's one retry)
    for _ in range(5):
        assert client.get("/api/me").status_code == 200  # pages are served while Clerk is down
    drained(resync_app)
    assert len(clerk.requests) == calls  # no second attempt within RETRY_SECONDS
    assert stored(resync_app, "user_ada").needs_resync


def test_an_up_to_date_user_costs_no_call_to_clerk(resync_app, clerk, tokens):
    write(resync_app, clerk_user("user_fresh", email="fresh@example.com", updated_at=OLD))
    client = resync_app.test_client()
    client.set_cookie("__session", tokens.mint("user_fresh"))
    assert client.get("/api/me").status_code == 200
    drained(resync_app)
    assert clerk.requests == []
