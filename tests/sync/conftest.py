"""Fixtures for `flask sync-clerk`: a stand-in Clerk on 127.0.0.1 and an app pointed at it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from shop.extensions import db
from tests.support import clerk_user
from tests.sync.standin import SECRET_KEY, StandInClerk, serve

BASE_TIME = 1_700_000_000_000


@pytest.fixture
def clerk():
    with serve(StandInClerk()) as standin:
        yield standin


@pytest.fixture
def sync_app(make_app, clerk):
    # Real retries, with pauses short enough that the failure tests do not wait seconds for them.
    return make_app(CLERK_SECRET_KEY=SECRET_KEY, CLERK_API_URL=clerk.url, CLERK_API_BACKOFF_SECONDS="0.01")


@pytest.fixture
def cli(sync_app):
    runner = sync_app.test_cli_runner()

    def invoke(*args: str):
        return runner.invoke(args=["sync-clerk", *args])

    return invoke


def user(index: int, **fields: Any) -> dict[str, Any]:
    """A Clerk user whose place in the oldest-first listing is `index`."""
    fields.setdefault("email", f"user{index}@example.com")
    fields.setdefault("updated_at", BASE_TIME + index)
    fields.setdefault("created_at", BASE_TIME + index)
    return clerk_user(f"user_{index:05d}", **fields)


ROW_COLUMNS = (
    "clerk_id, email, first_name, last_name, image_url, role::text AS role, clerk_updated_at,"
    " deleted_at, needs_resync, updated_at, xmin::text AS xmin"
)


def mirror_rows(app, columns: str = ROW_COLUMNS) -> dict[str, dict[str, Any]]:
    """Every row of `users` by clerk_id (`columns` must include it), by default with the system column
    xmin (it changes on any write)."""
    with app.app_context():
        result = db.session.execute(text(f"SELECT {columns} FROM users"))
        rows = {row.clerk_id: dict(row._mapping) for row in result}
        db.session.rollback()
        return rows


def seed(app, *users: dict[str, Any], deleted: tuple[str, ...] = ()) -> None:
    """Put users in the mirror through the mirror itself (its batch path), then tombstone `deleted`."""
    from shop import mirror
    from shop.clerk.users import parse_user

    with app.app_context():
        mirror.apply_snapshots(db.session.connection(), [parse_user(payload) for payload in users])
        for clerk_id in deleted:
            mirror.apply_deletion(db.session.connection(), clerk_id)
        db.session.commit()
