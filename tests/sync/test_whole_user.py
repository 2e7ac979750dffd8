"""`flask sync-clerk sync` mirrors the whole user (metadata, phone, opt-in, bans) through its batch path."""

from tests.sync.conftest import BASE_TIME, mirror_rows, user

PHONE = {"id": "idn_phone", "object": "phone_number", "phone_number": "+33612345678"}


def whole_rows(app) -> dict[str, dict]:
    return mirror_rows(
        app,
        "clerk_id, public_metadata, private_metadata, unsafe_metadata, phone, marketing_opt_in, banned, locked",
    )


def rich(index: int, **fields):
    defaults = {
        "public_metadata": {"plan": "pro" if index % 2 else "free"},
        "private_metadata": None,  # as Clerk sends it
        "unsafe_metadata": {"marketing_opt_in": index % 3 == 0},
        "phone_numbers": [PHONE],
        "primary_phone_number_id": "idn_phone" if index % 4 == 0 else None,
        "banned": index == 7,
        "locked": index == 8,
    }
    return user(index, **{**defaults, **fields})


def test_a_sync_mirrors_metadata_phone_opt_in_bans_and_locks(clerk, cli, sync_app):
    clerk.put(*(rich(i) for i in range(12)), rich(12, public_metadata={"big": "x" * 9000}))

    result = cli("sync")

    assert result.exit_code == 0, result.output
    rows = whole_rows(sync_app)
    assert rows["user_00001"]["public_metadata"] == {"plan": "pro"}
    assert rows["user_00002"]["private_metadata"] == {}
    assert {clerk_id for clerk_id, row in rows.items() if row["marketing_opt_in"]} == {
        f"user_{i:05d}" for i in (0, 3, 6, 9, 12)
    }
    assert {clerk_id for clerk_id, row in rows.items() if row["phone"]} == {f"user_{i:05d}" for i in (0, 4, 8, 12)}
    assert rows["user_00007"]["banned"] and not rows["user_00006"]["banned"]
    assert rows["user_00008"]["locked"]
    assert rows["user_00012"]["public_metadata"] is None  # over 8 KB: NULL, the rest of the user applied
    assert rows["user_00012"]["phone"] == "+33612345678"


def test_a_second_sync_with_nothing_changed_writes_no_row_and_a_metadata_change_is_written(clerk, cli, sync_app):
    clerk.put(*(rich(i) for i in range(6)))
    assert cli("sync").exit_code == 0
    before = mirror_rows(sync_app)

    assert cli("sync").exit_code == 0
    assert {k: v["xmin"] for k, v in mirror_rows(sync_app).items()} == {k: v["xmin"] for k, v in before.items()}

    clerk.put(rich(2, public_metadata={"plan": "team"}, banned=True, updated_at=BASE_TIME + 100))
    result = cli("sync")
    assert result.exit_code == 0, result.output
    rows = whole_rows(sync_app)
    assert (rows["user_00002"]["public_metadata"], rows["user_00002"]["banned"]) == ({"plan": "team"}, True)
    changed = {k for k, v in mirror_rows(sync_app).items() if v["xmin"] != before[k]["xmin"]}
    assert changed == {"user_00002"}
