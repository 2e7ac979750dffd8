"""Parsing Clerk's User, checked on every real payload in tests/vectors."""

import pytest

from shop.clerk.events import NotAClerkEvent, parse_event
from shop.clerk.users import NotAClerkUser, UserSnapshot, parse_user
from tests.support import clerk_user, vector


def test_docs_user_created_event():
    event = parse_event(vector("clerk-docs_webhook_user_created.json"))
    assert event.type == "user.created"
    assert event.snapshot == UserSnapshot.of(
        clerk_id="user_29w83sxmDNGwOuEthce5gg56FcC",
        email="example@example.org",
        first_name="Example",
        last_name="Example",
        image_url="https://img.clerk.com/xxxxxx",
        updated_at=1654012591835,
    )


def test_openapi_user_created_without_any_email():
    event = parse_event(vector("openapi-specs_webhook_user_created.json"))
    assert event.user_id == "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S"
    # primary_email_address_id points nowhere: email_addresses is empty.
    assert event.snapshot.email is None
    assert (event.snapshot.first_name, event.snapshot.last_name) == ("John", "Doe")


def test_openapi_user_updated():
    payload = vector("openapi-specs_webhook_user_updated.json")
    event = parse_event(payload)
    assert event.type == "user.updated"
    assert event.snapshot.last_name == "Doe Updated"
    assert event.snapshot.image_url == "https://img.clerk.com/yyyyy"
    assert event.snapshot.updated_at == payload["data"]["updated_at"]


def test_openapi_user_deleted_carries_only_the_id():
    event = parse_event(vector("openapi-specs_webhook_user_deleted.json"))
    assert (event.type, event.user_id, event.snapshot) == ("user.deleted", "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S", None)


def test_backend_fixture_user_with_several_emails_and_google():
    user = vector("clerk-javascript_fixture_backend_user.json")
    snapshot = parse_user(user)
    assert snapshot.clerk_id == "user_cafebabe"
    assert snapshot.email == "john.doe@clerk.test"
    assert snapshot.image_url == "https://clerk.com"


def test_primary_email_is_chosen_by_id_not_position():
    user = clerk_user("user_a", email="primary@example.com")
    assert user["email_addresses"][0]["email_address"] != "primary@example.com"
    assert parse_user(user).email == "primary@example.com"


def test_deprecated_profile_image_url_is_the_fallback():
    user = clerk_user("user_a", image_url=None, profile_image_url="https://img.clerk.com/old")
    assert parse_user(user).image_url == "https://img.clerk.com/old"


@pytest.mark.parametrize(
    "broken",
    [
        None,
        [],
        "user",
        {"id": "user_a"},  # no updated_at
        {"id": "user_a", "updated_at": "1700000000000"},
        {"id": "user_a", "updated_at": True},
        {"id": "user_a", "updated_at": -1},
        {"id": "user_a", "updated_at": 2**64},
        {"id": "", "updated_at": 1},
        {"id": 12, "updated_at": 1},
        {"id": "user_" + "x" * 100, "updated_at": 1},
    ],
)
def test_malformed_users_are_refused(broken):
    with pytest.raises(NotAClerkUser):
        parse_user(broken)


@pytest.mark.parametrize(
    "envelope",
    [
        None,
        {},
        {"type": "user.created"},
        {"type": 3, "data": {}},
        {"type": "user.created", "data": []},
        {"type": "user.deleted", "data": {"deleted": True}},
        {"type": "user.updated", "data": {"id": "user_a"}},
    ],
)
def test_malformed_events_are_refused(envelope):
    with pytest.raises(NotAClerkEvent):
        parse_event(envelope)


def test_other_event_types_are_parsed_but_not_handled():
    event = parse_event({"type": "session.created", "data": {"id": "sess_1", "user_id": "user_a"}})
    assert event.type == "session.created"
    assert not event.is_handled
