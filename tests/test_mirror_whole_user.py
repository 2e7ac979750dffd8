"""The whole Clerk user in the mirror: metadata, phone, marketing opt-in, bans and locks, through
the webhook path (signed deliveries) and the parser every path shares. The sync's path is in
tests/sync/test_whole_user.py, the first sign-in's in tests/auth/test_provisioning.py."""

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from shop.clerk.users import FIELD_COLUMNS, MAX_METADATA_BYTES, parse_user
from shop.extensions import db
from shop.models import User
from tests.support import clerk_user, deleted_event, event, vector

PHONES = [
    {"id": "idn_phone_work", "object": "phone_number", "phone_number": "+15555550100"},
    {"id": "idn_phone_main", "object": "phone_number", "phone_number": "+447700900123"},
]


def whole_user(clerk_id="user_whole", *, updated_at=10, **changes):
    fields = {
        "phone_numbers": PHONES,
        "primary_phone_number_id": "idn_phone_main",
        "public_metadata": {"plan": "pro", "tier": {"level": 2}},
        "private_metadata": {"stripe_customer": "cus_123"},
        "unsafe_metadata": {"marketing_opt_in": True, "theme": "dark"},
        "banned": False,
        "locked": True,
    }
    return clerk_user(clerk_id, email=f"{clerk_id}@example.com", updated_at=updated_at, **{**fields, **changes})


def sized(total: int) -> dict:
    """A metadata object whose compact UTF-8 JSON is exactly `total` bytes."""
    value = {"k": ""}
    value["k"] = "x" * (total - len(json.dumps(value, separators=(",", ":"))))
    assert len(json.dumps(value, separators=(",", ":")).encode()) == total
    return value


@pytest.fixture
def row(app):
    def read(clerk_id="user_whole"):
        with app.app_context():
            user = db.session.scalar(select(User).where(User.clerk_id == clerk_id))
            db.session.expunge_all()
            return user

    return read


# --- the parser every path shares ---------------------------------------------------------------------------


def test_every_real_payload_gives_objects_and_null_private_metadata_gives_an_empty_one():
    for name in ("clerk-docs_webhook_user_created.json", "openapi-specs_webhook_user_updated.json"):
        snapshot = parse_user(vector(name)["data"])
        assert isinstance(snapshot.public_metadata, dict) and isinstance(snapshot.unsafe_metadata, dict)
        assert snapshot.private_metadata is not None
    user = clerk_user("user_null", private_metadata=None)
    assert parse_user(user).private_metadata == {}
    user.pop("public_metadata")
    assert parse_user(user).public_metadata == {}  # an older payload without the key


def test_the_primary_phone_is_the_one_clerk_names_not_the_first():
    assert parse_user(whole_user()).phone == "+447700900123"
    assert parse_user(whole_user(primary_phone_number_id=None)).phone is None
    assert parse_user(whole_user(primary_phone_number_id="idn_nowhere")).phone is None
    assert parse_user(whole_user(phone_numbers="+1555")).phone is None


@pytest.mark.parametrize(
    ("unsafe", "opted_in"),
    [
        ({"marketing_opt_in": True}, True),
        ({"marketing_opt_in": "true"}, False),
        ({"marketing_opt_in": 1}, False),
        ({"marketing_opt_in": False}, False),
        ({}, False),
        (None, False),
        (["marketing_opt_in"], False),
    ],
)
def test_marketing_opt_in_is_only_a_json_true(unsafe, opted_in):
    assert parse_user(whole_user(unsafe_metadata=unsafe)).marketing_opt_in is opted_in


def test_banned_and_locked_are_only_json_true():
    assert (parse_user(whole_user(banned=True)).banned, parse_user(whole_user()).locked) == (True, True)
    assert (parse_user(whole_user(banned="yes")).banned, parse_user(whole_user(locked=1)).locked) == (False, False)


def test_metadata_up_to_clerks_8_kb_is_kept_and_over_it_is_null_with_a_warning(caplog):
    at_limit, over = sized(MAX_METADATA_BYTES), sized(MAX_METADATA_BYTES + 1)
    assert parse_user(whole_user(public_metadata=at_limit)).public_metadata == at_limit
    with caplog.at_level(logging.WARNING, logger="shop.clerk.users"):
        snapshot = parse_user(whole_user(public_metadata=over))
    assert snapshot.public_metadata is None
    assert snapshot.private_metadata == {"stripe_customer": "cus_123"} and snapshot.phone  # the rest applies
    assert "user_whole: Clerk's public_metadata is over 8192 bytes; stored as NULL" in caplog.text
    assert "xxxx" not in caplog.text  # the warning names the user, never the content
    # Bytes, not characters: 4,000 two-byte characters are over 8 KB.
    assert parse_user(whole_user(unsafe_metadata={"k": "é" * 4100})).unsafe_metadata is None


@pytest.mark.parametrize("value", [[1, 2], "a string", 42, True, {"nul": "a\x00b"}, {"lone": "\ud800"}])
def test_metadata_that_is_not_a_storable_object_is_null(value):
    snapshot = parse_user(whole_user(private_metadata=value))
    assert snapshot.private_metadata is None
    assert snapshot.public_metadata == {"plan": "pro", "tier": {"level": 2}}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(public=JSON, unsafe=JSON, phones=JSON, banned=JSON)
def test_any_json_in_these_fields_parses_to_a_kept_object_or_null_never_an_error(public, unsafe, phones, banned):
    snapshot = parse_user(
        clerk_user("user_any", public_metadata=public, unsafe_metadata=unsafe, phone_numbers=phones, banned=banned)
    )
    assert set(snapshot.fields) == set(FIELD_COLUMNS)
    assert snapshot.public_metadata is None or isinstance(snapshot.public_metadata, dict)
    assert snapshot.banned in (True, False) and snapshot.marketing_opt_in in (True, False)


# --- through signed webhooks ---------------------------------------------------------------------------------


def test_a_user_updated_webhook_mirrors_the_whole_user(deliver, row):
    assert deliver(event("user.created", whole_user())).status_code == 200

    user = row()
    assert user.public_metadata == {"plan": "pro", "tier": {"level": 2}}
    assert user.private_metadata == {"stripe_customer": "cus_123"}
    assert user.unsafe_metadata == {"marketing_opt_in": True, "theme": "dark"}
    assert (user.phone, user.marketing_opt_in, user.banned, user.locked) == ("+447700900123", True, False, True)


def test_an_older_delivery_changes_no_field_and_an_equal_one_applies(deliver, row):
    deliver(event("user.created", whole_user(updated_at=10)))
    older = whole_user(updated_at=9, public_metadata={"plan": "free"}, banned=True, unsafe_metadata={})
    assert deliver(event("user.updated", older)).status_code == 200
    user = row()
    assert (user.public_metadata["plan"], user.banned, user.marketing_opt_in) == ("pro", False, True)

    equal = whole_user(updated_at=10, public_metadata={"plan": "team"}, banned=True, phone_numbers=[])
    assert deliver(event("user.updated", equal)).status_code == 200
    user = row()
    assert (user.public_metadata, user.banned, user.phone) == ({"plan": "team"}, True, None)


def test_metadata_over_8_kb_in_a_webhook_is_null_and_the_rest_applies(deliver, row, caplog):
    payload = event("user.created", whole_user(unsafe_metadata={**sized(MAX_METADATA_BYTES + 100)}))
    with caplog.at_level(logging.WARNING):
        assert deliver(payload).status_code == 200
    user = row()
    assert user.unsafe_metadata is None and user.marketing_opt_in is False
    assert user.public_metadata == {"plan": "pro", "tier": {"level": 2}} and user.email == "user_whole@example.com"


def test_lifting_a_ban_is_mirrored(deliver, row):
    deliver(event("user.created", whole_user(banned=True, updated_at=10)))
    assert row().banned is True
    deliver(event("user.updated", whole_user(banned=False, updated_at=11)))
    assert row().banned is False


def test_a_tombstone_erases_metadata_and_custom_fields(deliver, row):
    deliver(event("user.created", whole_user()))
    assert deliver(deleted_event("user_whole")).status_code == 200
    user = row()
    assert user.deleted_at is not None
    assert (user.public_metadata, user.private_metadata, user.unsafe_metadata) == (None, None, None)
    assert (user.phone, user.marketing_opt_in, user.banned, user.locked) == (None, False, False, False)


def test_the_documented_metadata_query_uses_its_index(deliver, app):
    for index in range(30):
        plan = "pro" if index % 10 == 0 else "free"
        deliver(event("user.created", whole_user(f"user_q{index}", public_metadata={"plan": plan})))
    with app.app_context():
        db.session.execute(text("SET LOCAL enable_seqscan = off"))  # a 30-row table would be scanned anyway
        plan = "\n".join(
            db.session.execute(
                text('EXPLAIN SELECT clerk_id FROM users WHERE public_metadata @> \'{"plan": "pro"}\'')
            ).scalars()
        )
        found = db.session.execute(
            text('SELECT count(*) FROM users WHERE public_metadata @> \'{"plan": "pro"}\'')
        ).scalar_one()
    assert "ix_users_public_metadata" in plan
    assert found == 3
