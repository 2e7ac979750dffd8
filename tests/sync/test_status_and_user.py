"""`flask sync-clerk status [--details] [--json]` (writes nothing; exit 0, 1 on drift, 2 unchecked) and `user`."""

import json

from werkzeug.wrappers import Response

from shop.extensions import db
from shop.models import Role, User
from tests.support import vector
from tests.sync.conftest import BASE_TIME, mirror_rows, seed, user
from tests.sync.standin import SECRET_KEY


def test_status_in_agreement_exits_0(clerk, cli, sync_app):
    clerk.put(*(user(i) for i in range(5)))
    seed(sync_app, *(user(i) for i in range(5)), user(9), deleted=("user_00009",))
    result = cli("status")
    assert result.exit_code == 0, result.output
    assert "Clerk:  5 users" in result.output
    assert "Mirror: 5 live users, 1 tombstones" in result.output
    assert "No drift: Clerk and the mirror agree." in result.output
    assert "In sync: 5" in result.output


def test_status_with_equal_counts_but_different_users_is_drift(clerk, cli, sync_app):
    """One user Clerk has and the mirror lacks, one the mirror has and Clerk lacks: the counts agree."""
    clerk.put(user(1), user(2))
    seed(sync_app, user(1), user(3))
    result = cli("status")
    assert result.exit_code == 1, result.output
    assert "Clerk:  2 users" in result.output and "Mirror: 2 live users" in result.output
    assert "Missing locally (in Clerk, not in the mirror): 1\n" in result.output
    assert "Live locally but gone from Clerk (Clerk answers 404): 1\n" in result.output
    assert "Drift: `flask sync-clerk sync` repairs it." in result.output


def test_status_json_for_machines(clerk, cli, sync_app):
    clerk.put(user(1), user(2, first_name="Renamed", updated_at=BASE_TIME + 50), user(3))
    seed(sync_app, user(1), user(2), user(4))
    result = cli("status", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)  # stdout is the JSON object alone
    assert report["result"] == "drift" and report["exit_code"] == 1
    assert (report["clerk_users"], report["mirror_live_users"], report["in_sync"]) == (3, 3, 1)
    assert report["counts"] == {
        "missing_locally": 1,
        "stale": 1,
        "gone_from_clerk": 1,
        "unconfirmed": 0,
        "tombstoned_but_in_clerk": 0,
    }
    assert report["ids"]["missing_locally"] == ["user_00003"]
    assert report["ids"]["stale"] == ["user_00002"]
    assert report["ids"]["gone_from_clerk"] == ["user_00004"]
    assert report["errors"] == []

    seed(sync_app, user(2, first_name="Renamed", updated_at=BASE_TIME + 50), user(3), deleted=("user_00004",))
    clean = cli("status", "--json")
    assert clean.exit_code == 0
    assert json.loads(clean.stdout)["result"] == "in_sync"


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

    assert result.exit_code == 1, result.output
    out = result.output
    assert "Missing locally (in Clerk, not in the mirror): 1\n  user_00003\n" in out
    assert "Stale locally (Clerk has newer data): 1\n  user_00002\n" in out
    assert "Live locally but gone from Clerk (Clerk answers 404): 1\n  user_00005\n" in out
    assert "Tombstoned locally but still in Clerk (never revived): 1\n  user_00004\n" in out
    assert "In sync: 1" in out
    assert mirror_rows(sync_app) == before


def test_a_tombstone_clerk_still_lists_is_reported_but_no_drift(clerk, cli, sync_app):
    clerk.put(user(1), user(4))
    seed(sync_app, user(1), user(4), deleted=("user_00004",))
    result = cli("status")
    assert result.exit_code == 0, result.output
    assert "Tombstoned locally but still in Clerk (never revived): 1" in result.output


def test_status_details_limits_the_ids_shown(clerk, cli):
    clerk.put(*(user(i) for i in range(30)))
    result = cli("status", "--details", "--limit", "3")
    assert "Missing locally (in Clerk, not in the mirror): 30\n" in result.output
    assert "… and 27 more (--limit)" in result.output


def test_status_when_clerk_fails_exits_2(clerk, cli):
    clerk.faults = [(lambda path: True, Response("down", status=500)) for _ in range(4)]
    result = cli("status")
    assert result.exit_code == 2
    assert "Clerk:  unknown users" in result.output
    assert "HTTP 500 after 3 retries" in result.output
    assert "No drift" not in result.output


def test_status_when_clerk_is_unreachable_exits_2_also_in_json(make_app):
    app = make_app(CLERK_SECRET_KEY=SECRET_KEY, CLERK_API_URL="http://127.0.0.1:9/v1")  # nothing listens on 9
    result = app.test_cli_runner().invoke(args=["sync-clerk", "status", "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["result"] == "unchecked" and report["clerk_users"] is None
    assert report["errors"] and SECRET_KEY not in result.output


def test_status_without_a_secret_key_exits_2(make_app):
    result = make_app().test_cli_runner().invoke(args=["sync-clerk", "status"])
    assert result.exit_code == 2
    assert "CLERK_SECRET_KEY" in result.output


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


def test_user_answered_with_another_user_is_refused(clerk, cli, sync_app):
    seed(sync_app, user(1))
    clerk.put(user(2, first_name="Other", updated_at=BASE_TIME + 10))
    before = mirror_rows(sync_app)
    clerk.faults = [(lambda path: path == "/v1/users/user_00001", Response(json.dumps(user(2))))]
    result = cli("user", "user_00001")
    assert result.exit_code == 1
    assert "user_00001: Clerk answered with another user, user_00002." in result.output
    assert mirror_rows(sync_app) == before
