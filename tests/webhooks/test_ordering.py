"""Svix delivers at least once and in no order: the final row is Clerk's latest state."""

import pytest
from sqlalchemy import select

from shop.extensions import db
from shop.models import Role, User
from tests.support import clerk_user, deleted_event, event


def created(clerk_id, **fields):
    return event("user.created", clerk_user(clerk_id, **fields))


def updated(clerk_id, **fields):
    return event("user.updated", clerk_user(clerk_id, **fields))


@pytest.fixture
def final_row(app):
    def read(clerk_id):
        with app.app_context():
            return db.session.scalar(select(User).where(User.clerk_id == clerk_id))

    return read


def deliver_all(deliver, *events):
    for payload in events:
        assert deliver(payload).status_code == 200


def test_updated_before_created(deliver, final_row):
    deliver_all(
        deliver,
        updated("user_a", email="a2@example.com", first_name="Second", updated_at=2),
        created("user_a", email="a1@example.com", first_name="First", updated_at=1),
    )
    row = final_row("user_a")
    assert (row.email, row.first_name, row.clerk_updated_at) == ("a2@example.com", "Second", 2)


def test_old_update_after_a_newer_one(deliver, final_row):
    deliver_all(
        deliver,
        created("user_a", first_name="v1", updated_at=1),
        updated("user_a", first_name="v3", updated_at=3),
        updated("user_a", first_name="v2", updated_at=2),
    )
    assert final_row("user_a").first_name == "v3"


def test_updated_after_deleted(deliver, final_row):
    deliver_all(
        deliver,
        created("user_a", email="a@example.com", updated_at=1),
        deleted_event("user_a"),
        updated("user_a", email="a@example.com", updated_at=2),
    )
    row = final_row("user_a")
    assert row.deleted_at is not None and row.email is None


def test_created_replayed_after_deleted(deliver, final_row):
    create = created("user_a", email="a@example.com", updated_at=1)
    assert deliver(create, svix_id="msg_create").json == {"status": "processed"}
    deliver(deleted_event("user_a"))
    # Clerk's dashboard replay reuses the svix-id; a fresh id must not resurrect either.
    assert deliver(create, svix_id="msg_create").json == {"status": "duplicate"}
    assert deliver(create).json == {"status": "processed"}
    assert final_row("user_a").deleted_at is not None


def test_deleted_twice(deliver, final_row):
    deliver_all(deliver, created("user_a", updated_at=1), deleted_event("user_a"))
    first_deleted_at = final_row("user_a").deleted_at
    assert deliver(deleted_event("user_a")).json == {"status": "processed"}
    assert final_row("user_a").deleted_at == first_deleted_at


def test_deleted_before_created(deliver, final_row):
    deliver_all(deliver, deleted_event("user_a"), created("user_a", email="a@example.com", updated_at=1))
    row = final_row("user_a")
    assert row.deleted_at is not None and row.email is None


def test_email_handed_from_a_stale_row_to_a_new_clerk_user(deliver, final_row):
    deliver_all(
        deliver,
        created("user_old", email="shared@example.com", updated_at=1),
        created("user_new", email="SHARED@example.com", updated_at=5),
    )
    old, new = final_row("user_old"), final_row("user_new")
    assert new.email == "SHARED@example.com"
    assert old.email is None and old.needs_resync and old.deleted_at is None
    assert old.id != new.id


@pytest.mark.parametrize("metadata", ["public_metadata", "unsafe_metadata"])
def test_metadata_claiming_admin_leaves_the_role_client(deliver, final_row, metadata):
    deliver_all(
        deliver,
        created("user_a", updated_at=1, **{metadata: {"role": "ADMIN"}}),
        updated("user_a", updated_at=2, **{metadata: {"role": "ADMIN", "isAdmin": True}}),
    )
    assert final_row("user_a").role == Role.CLIENT
