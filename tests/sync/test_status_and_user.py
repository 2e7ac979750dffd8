"""`flask sync-clerk status [--details]` (writes nothing) and `flask sync-clerk user USER_ID`."""

from werkzeug.wrappers import Response

from shop.extensions import db
from shop.models import Role, User
from tests.support import vector
from tests.sync.conftest import BASE_TIME, mirror_rows, seed, user


def test_status_compares_clerks_count_with_the_mirrors(clerk, cli, sync_app):
    clerk.put(*(user(i) for i in range(5)))
    seed(sync_app, user(0), user(1), user(9), deleted=("user_00009",))
    result = cli("status")
    assert result.exit_code == 0, result.output
    assert "Clerk:  5 users" in result.output
    assert "Mirror: 2 live users, 1 tombstones" in result.output
    assert "Counts: Clerk has 3 more; `flask sync-clerk sync` repairs it" in result.output
    assert [path for path, _ in clerk.requests] == ["/v1/users/count"]


def test_status_details_names_who_differs_and_writes_nothing(clerk, cli, sync_app):
    clerk.put(
        user(1),  # in sync
        user(2, first_name="Renamed", updated_at=BASE_TIME + 50),  # stale locally
        user(3),  # missing locally
        user(4, updated_at=BASE_TIME + 60),  # tombstoned locally, still in Clerk
    )
    seed(sync_app, user(1), user(2), user(4), user(5), deleted=("user_00004",))  # 5: gone from Clerk
    before = mirror_rows(sync_app)

    result = cli("status", "--details")

    assert result.exit_code == 0, result.output
    out = result.output
    assert "Missing locally (in Clerk, not in the mirror): 1\n  user_00003\n" in out
    assert "Stale locally (Clerk has newer data): 1\n  user_00002\n" in out
    assert "Live locally but gone from Clerk (Clerk answers 404): 1\n  user_00005\n" in out
    assert "Tombstoned locally but still in Clerk (never revived): 1\n  user_00004\n" in out
    assert "In sync: 1" in out
    assert mirror_rows(sync_app) == before


def test_status_details_limits_the_ids_shown(clerk, cli):
    clerk.put(*(user(i) for i in range(30)))
    result = cli("status", "--details", "--limit", "3")
    assert "Missing locally (in Clerk, not in the mirror): 30\n" in result.output
    assert "… and 27 more (--limit)" in result.output


def test_status_when_clerk_fails(clerk, cli):
    clerk.faults = [(lambda path: True, Response("down", status=500)) for _ in range(4)]
    result = cli("status")
    assert result.exit_code == 1
    assert "Clerk:  unknown users" in result.output
    assert "HTTP 500 after 3 retries" in result.output


def test_user_creates_one_user_from_clerk(clerk, cli, sync_app):
    clerk.put(vector("clerk-javascript_fixture_backend_user.json"))
    result = cli("user", "user_cafebabe")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "user_cafebabe: created (in Clerk)"
    assert mirror_rows(sync_app)["user_cafebabe"]["email"] == "john.doe@clerk.test"
    assert cli("user", "user_cafebabe").output.strip() == "user_cafebabe: unchanged (in Clerk)"


def test_user_updates_and_keeps_the_role(clerk, cli, sync_app):
    seed(sync_app, user(1))
    with sync_app.app_context():
        db.session.query(User).filter_by(clerk_id="user_00001").one().role = Role.ADMIN
        db.session.commit()
    clerk.put(user(1, first_name="Grace", updated_at=BASE_TIME + 10, public_metadata={"role": "CLIENT"}))
    assert cli("user", "user_00001").output.strip() == "user_00001: updated (in Clerk)"
    row = mirror_rows(sync_app)["user_00001"]
    assert (row["first_name"], row["role"]) == ("Grace", "ADMIN")


def test_user_gone_from_clerk_is_tombstoned_after_the_404(clerk, cli, sync_app):
    seed(sync_app, user(1))
    result = cli("user", "user_00001")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "user_00001: tombstoned (Clerk answers 404)"
    assert mirror_rows(sync_app)["user_00001"]["deleted_at"] is not None
    assert cli("user", "user_00001").output.strip() == "user_00001: already_deleted (Clerk answers 404)"


def test_user_a_tombstone_is_never_revived(clerk, cli, sync_app):
    seed(sync_app, user(1), deleted=("user_00001",))
    clerk.put(user(1, updated_at=BASE_TIME + 999))
    assert cli("user", "user_00001").output.strip() == "user_00001: unchanged (in Clerk)"
    assert mirror_rows(sync_app)["user_00001"]["deleted_at"] is not None


def test_user_unknown_everywhere_invents_no_row(clerk, cli, sync_app):
    result = cli("user", "user_typo")
    assert result.exit_code == 1
    assert "Clerk has no such user and neither has the mirror" in result.output
    assert mirror_rows(sync_app) == {}


def test_user_dry_run_writes_nothing(clerk, cli, sync_app):
    seed(sync_app, user(1))
    clerk.put(user(2))
    before = mirror_rows(sync_app)
    assert (
        cli("user", "user_00001", "--dry-run").output.strip() == "user_00001: would be tombstoned (Clerk answers 404)"
    )
    assert cli("user", "user_00002", "--dry-run").output.strip() == "user_00002: would be created (in Clerk)"
    assert mirror_rows(sync_app) == before


def test_user_when_clerk_fails(make_app, clerk):
    app = make_app(CLERK_SECRET_KEY="sk_test_wrong", CLERK_API_URL=clerk.url)
    result = app.test_cli_runner().invoke(args=["sync-clerk", "user", "user_00001"])
    assert result.exit_code == 1
    assert "Clerk rejected the secret key (clerk_key_invalid)" in result.output
