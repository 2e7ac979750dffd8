"""Differential: Clerk's official Python SDK (`clerk-backend-api`) and our parser read the same Backend
API answers, users with metadata, phones, bans and locks, and agree on every field the mirror keeps."""

from clerk_backend_api import Clerk

from devtools.clerk_standin.store import complete, new_user
from shop.clerk.users import parse_user
from tests.sync.standin import SECRET_KEY

PHONES = [
    {
        "id": f"idn_phone_{n}",
        "object": "phone_number",
        "phone_number": number,
        "reserved_for_second_factor": False,
        "default_second_factor": False,
        "reserved": False,
        "linked_to": [],
        "created_at": 1,
        "updated_at": 1,
        "verification": None,
    }
    for n, number in enumerate(["+15555550100", "+447700900123"])
]


def user(index: int, **fields):
    """A user as the local stand-in makes them (every field the SDK requires), with `fields` on top."""
    made = new_user(f"user_{index:05d}", f"user{index}@example.com", "Ada", "Lovelace", "https://img.clerk.com/x", 1)
    return {**made, "created_at": 1_700_000_000_000 + index, **fields}


def users():
    return [
        complete(
            user(
                index,
                public_metadata={"plan": "pro", "seats": index, "nested": {"deep": [1, {"x": None}]}},
                private_metadata=None if index % 2 else {"crm": f"c{index}"},
                unsafe_metadata={"marketing_opt_in": index % 3 == 0, "theme": "dark"},
                phone_numbers=PHONES if index % 2 else [],
                primary_phone_number_id="idn_phone_1" if index % 2 else None,
                banned=index == 3,
                locked=index == 4,
            )
        )
        for index in range(8)
    ]


def test_the_sdk_and_our_parser_agree_on_metadata_phones_bans_and_locks(clerk):
    clerk.put(*users())
    sdk = Clerk(bearer_auth=SECRET_KEY, server_url=clerk.url)

    listed = sdk.users.list(request={"limit": 100, "order_by": "created_at"})
    assert len(listed) == 8
    for theirs in listed:
        raw = clerk.users[theirs.id]
        ours = parse_user(raw)
        assert ours.public_metadata == theirs.public_metadata
        assert ours.private_metadata == (theirs.private_metadata or {})  # null: {} here, None in the SDK
        assert ours.unsafe_metadata == theirs.unsafe_metadata
        assert (ours.banned, ours.locked) == (theirs.banned, theirs.locked)
        primary = next((p.phone_number for p in theirs.phone_numbers if p.id == theirs.primary_phone_number_id), None)
        assert ours.phone == primary
        assert ours.marketing_opt_in == (theirs.unsafe_metadata.get("marketing_opt_in") is True)
    one = sdk.users.get(user_id="user_00003")
    assert one.banned is True and parse_user(clerk.users["user_00003"]).banned is True
