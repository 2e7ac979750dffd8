"""The pattern to copy when the mirror gains a field (docs/custom-fields.md): each custom field reaches
its column by all three paths (a signed webhook, `flask sync-clerk sync`, a first sign-in's fetch),
and a tombstone erases it. A new field adds one line to CUSTOM_FIELDS."""

import pytest
from sqlalchemy import text

from shop.clerk.users import FIELDS
from shop.extensions import db
from tests.support import deleted_event, event
from tests.sync.conftest import user

# (column, what Clerk sends in its User, what the column then holds)
CUSTOM_FIELDS = [
    (
        "phone",
        {
            "phone_numbers": [
                {"id": "idn_other", "object": "phone_number", "phone_number": "+15555550100"},
                {"id": "idn_main", "object": "phone_number", "phone_number": "+33612345678"},
            ],
            "primary_phone_number_id": "idn_main",
        },
        "+33612345678",
    ),
    ("marketing_opt_in", {"unsafe_metadata": {"marketing_opt_in": True, "theme": "dark"}}, True),
]


def stored(app, clerk_id: str, column: str):
    assert column in {field.column for field in FIELDS}
    with app.app_context():
        value = db.session.execute(
            text(f"SELECT {column} FROM users WHERE clerk_id = :clerk_id"), {"clerk_id": clerk_id}
        ).scalar_one()
        db.session.rollback()
        return value


@pytest.mark.parametrize(("column", "clerk_sends", "expected"), CUSTOM_FIELDS)
def test_by_a_signed_webhook(column, clerk_sends, expected, sync_app, deliver):
    assert deliver(event("user.created", user(1, **clerk_sends))).status_code == 200
    assert stored(sync_app, "user_00001", column) == expected


@pytest.mark.parametrize(("column", "clerk_sends", "expected"), CUSTOM_FIELDS)
def test_by_the_sync(column, clerk_sends, expected, sync_app, clerk, cli):
    clerk.put(user(1, **clerk_sends), user(2))
    assert cli("sync").exit_code == 0
    assert stored(sync_app, "user_00001", column) == expected


@pytest.mark.parametrize(("column", "clerk_sends", "expected"), CUSTOM_FIELDS)
def test_by_a_first_sign_in(column, clerk_sends, expected, sync_app, clerk, tokens):
    clerk.put(user(1, **clerk_sends))
    shopper = sync_app.test_client()
    shopper.set_cookie("__session", tokens.mint("user_00001"))
    assert shopper.get("/api/me").status_code == 200  # no row yet: fetched from the Backend API
    assert stored(sync_app, "user_00001", column) == expected


@pytest.mark.parametrize(("column", "clerk_sends", "expected"), CUSTOM_FIELDS)
def test_a_tombstone_erases_it(column, clerk_sends, expected, sync_app, deliver):
    deliver(event("user.created", user(1, **clerk_sends)))
    deliver(deleted_event("user_00001"))
    erased = next(field.erased for field in FIELDS if field.column == column)
    assert stored(sync_app, "user_00001", column) == erased != expected
