"""`flask sync-clerk sync` against a stand-in Clerk on 127.0.0.1, on the real PostgreSQL."""

import copy
import json

import pytest
from sqlalchemy import text
from werkzeug.wrappers import Response

from shop.clerk.api import clerk_api
from shop.extensions import db
from shop.models import Role, User
from shop.sync import reconcile
from tests.support import vector
from tests.sync.conftest import BASE_TIME, mirror_rows, seed, user
from tests.sync.standin import clerk_error


def vector_users():
    """Clerk's published users: several e-mails and a Google account, no e-mail at all, the docs' user."""
    backend = vector("clerk-javascript_fixture_backend_user.json")
    backend = {**backend, "created_at": BASE_TIME - 3}
    no_email = {**vector("openapi-specs_webhook_user_created.json")["data"], "created_at": BASE_TIME - 2}
    docs = {**vector("clerk-docs_webhook_user_created.json")["data"], "created_at": BASE_TIME - 1}
    return [backend, no_email, docs]


def summary(result) -> dict[str, str]:
    line = next(line for line in result.output.splitlines() if "created=" in line)
    return dict(part.split("=") for part in line.split(":")[-1].split())


def test_pages_through_every_user_oldest_first_with_a_last_page_of_exactly_500(clerk, cli, sync_app):
    clerk.put(*vector_users(), *(user(i) for i in range(997)))

    result = cli("sync")

    assert result.exit_code == 0, result.output
    pages = clerk.list_requests()
    assert pages == [
        {"limit": "500", "offset": "0", "order_by": "created_at"},
        {"limit": "500", "offset": "500", "order_by": "created_at"},
    ]  # the count (1000) says the full second page is the last: no request for an empty third page
    rows = mirror_rows(sync_app)
    assert len(rows) == 1000
    assert rows["user_cafebabe"]["email"] == "john.doe@clerk.test"  # primary of several, Google-linked
    assert rows["user_cafebabe"]["image_url"] == "https://clerk.com"
    assert rows["user_2g7np7Hrk0SN6kj5EDMLDaKNL0S"]["email"] is None  # no e-mail at all
    assert rows["user_29w83sxmDNGwOuEthce5gg56FcC"]["email"] == "example@example.org"
    assert rows["user_00996"]["clerk_updated_at"] == BASE_TIME + 996  # Clerk's ms, as stored by webhooks
    counts = summary(result)
    assert (counts["created"], counts["updated"], counts["unchanged"], counts["tombstoned"], counts["failed"]) == (
        "1000",
        "0",
        "0",
        "0",
        "0",
    )
    assert counts["api_calls"] == "3"
    assert "Consistent: the mirror has 1000 live users." in result.output


def test_a_short_last_page_ends_the_listing(clerk, cli, sync_app):
    clerk.put(*(user(i) for i in range(1201)))
    result = cli("sync", "--batch-size", "300")
    assert result.exit_code == 0, result.output
    assert [p["offset"] for p in clerk.list_requests()] == ["0", "500", "1000"]
    assert len(mirror_rows(sync_app)) == 1201


def test_plain_progress_lines_when_not_a_terminal(clerk, cli):
    clerk.put(*(user(i) for i in range(1000)))
    result = cli("sync")
    assert "Clerk has 1000 users; listing them oldest first, 500 per page." in result.output
    assert "listed 500/1000 users" in result.output
    assert "listed 1000/1000 users" in result.output


def test_repairs_what_webhooks_missed_and_keeps_roles_and_tombstones(clerk, cli, sync_app):
    clerk.put(
        user(1, first_name="New", updated_at=BASE_TIME + 50),  # the mirror missed this update
        user(2),  # the mirror missed the creation
        user(3, first_name="Old", updated_at=BASE_TIME + 10),  # the mirror has newer data than this listing
        user(4),  # an operator made this one ADMIN
        user(5, updated_at=BASE_TIME + 99),  # a tombstone in the mirror: never brought back
    )
    seed(
        sync_app,
        user(1, first_name="Before", updated_at=BASE_TIME + 1),
        user(3, first_name="Newer", updated_at=BASE_TIME + 20),
        user(4),
        user(5),
        user(6),  # deleted in Clerk, deletion webhook lost
        deleted=("user_00005",),
    )
    with sync_app.app_context():
        admin = db.session.query(User).filter_by(clerk_id="user_00004").one()
        admin.role = Role.ADMIN
        db.session.commit()

    result = cli("sync")

    assert result.exit_code == 0, result.output
    rows = mirror_rows(sync_app)
    assert rows["user_00001"]["first_name"] == "New"
    assert rows["user_00002"]["email"] == "user2@example.com"
    assert rows["user_00003"]["first_name"] == "Newer"  # stale data never overwrites newer
    assert rows["user_00004"]["role"] == "ADMIN"
    assert rows["user_00005"]["deleted_at"] is not None and rows["user_00005"]["email"] is None
    assert rows["user_00006"]["deleted_at"] is not None and rows["user_00006"]["email"] is None
    assert clerk.user_requests() == ["user_00006"]  # tombstoned only after Clerk's 404
    counts = summary(result)
    assert (counts["created"], counts["updated"], counts["unchanged"], counts["tombstoned"]) == ("1", "1", "3", "1")


def test_an_email_moved_between_users_is_handed_over(clerk, cli, sync_app):
    seed(sync_app, user(1, email="shared@example.com"), user(2, email="two@example.com"))
    clerk.put(
        user(1, email="one-new@example.com", updated_at=BASE_TIME + 100),
        user(2, email="shared@example.com", updated_at=BASE_TIME + 100),
    )
    assert cli("sync").exit_code == 0
    rows = mirror_rows(sync_app)
    assert rows["user_00001"]["email"] == "one-new@example.com"
    assert rows["user_00002"]["email"] == "shared@example.com"
    assert not rows["user_00001"]["needs_resync"] and not rows["user_00002"]["needs_resync"]


def test_a_second_sync_with_nothing_changed_writes_no_row(clerk, cli, sync_app):
    clerk.put(*vector_users(), *(user(i) for i in range(700)))
    seed(sync_app, user(900), deleted=("user_00900",))
    assert cli("sync").exit_code == 0
    before = mirror_rows(sync_app)

    result = cli("sync")

    assert result.exit_code == 0, result.output
    assert mirror_rows(sync_app) == before  # xmin and updated_at included: not one row rewritten
    counts = summary(result)
    assert (counts["created"], counts["updated"], counts["unchanged"], counts["tombstoned"]) == ("0", "0", "703", "0")


def test_dry_run_writes_nothing_and_reports_what_it_would_do(clerk, cli, sync_app):
    clerk.put(user(1, first_name="Changed", updated_at=BASE_TIME + 50), user(2), user(3))
    seed(sync_app, user(1), user(3), user(4))  # 1 stale, 2 missing, 3 current, 4 gone from Clerk
    before = mirror_rows(sync_app)

    result = cli("sync", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "Dry run, nothing written" in result.output
    assert "3 users would change; run without --dry-run to apply." in result.output
    counts = summary(result)
    assert (counts["created"], counts["updated"], counts["unchanged"], counts["tombstoned"]) == ("1", "1", "1", "1")
    assert mirror_rows(sync_app) == before  # same rows, same updated_at, same xmin
    assert clerk.user_requests() == ["user_00004"]  # the 404 check is a read: it still runs


def test_the_listing_failing_after_retries_tombstones_nothing(clerk, cli, sync_app):
    clerk.put(*(user(i) for i in range(600)))
    seed(sync_app, user(5000))  # gone from Clerk, but the listing will not finish
    second_page = lambda path: path == "/v1/users" and len(clerk.list_requests()) >= 2  # noqa: E731
    clerk.faults = [(second_page, Response("boom", status=500)) for _ in range(4)]

    result = cli("sync")

    assert result.exit_code == 1
    assert "The listing stopped after 500 of 600 users" in result.output
    assert "HTTP 500 after 3 retries" in result.output
    assert "The listing did not complete, so no user was tombstoned." in result.output
    rows = mirror_rows(sync_app)
    assert rows["user_05000"]["deleted_at"] is None
    assert len(rows) == 501  # the first page's batch was committed: correct data is kept
    assert clerk.user_requests() == []


def test_429_with_retry_after_and_a_500_are_retried_and_the_sync_completes(clerk, cli, sync_app):
    clerk.put(*(user(i) for i in range(600)))
    clerk.faults = [
        (lambda path: path == "/v1/users", clerk_error(429, "too_many_requests", "Too many", **{"Retry-After": "1"})),
        (lambda path: path == "/v1/users", Response("upstream", status=502)),
    ]
    result = cli("sync")
    assert result.exit_code == 0, result.output
    assert len(mirror_rows(sync_app)) == 600
    assert summary(result)["api_calls"] == "5"  # count, 429, 502, page 1, page 2


def test_invalid_secret_key_is_explained_and_nothing_changes(make_app, clerk, sync_app):
    seed(sync_app, user(1))
    before = mirror_rows(sync_app)
    app = make_app(CLERK_SECRET_KEY="sk_test_not_the_right_key", CLERK_API_URL=clerk.url)

    result = app.test_cli_runner().invoke(args=["sync-clerk", "sync"])

    assert result.exit_code == 1
    assert "Clerk rejected the secret key (clerk_key_invalid)" in result.output
    assert "CLERK_SECRET_KEY" in result.output
    assert "sk_test_not_the_right_key" not in result.output
    assert mirror_rows(sync_app) == before
    assert len(clerk.requests) == 1  # a 401 is not retried


def test_a_page_that_is_not_json_stops_the_sync(clerk, cli, sync_app):
    clerk.put(user(1))
    seed(sync_app, user(2))
    clerk.faults = [(lambda path: path == "/v1/users", Response("<html>maintenance</html>", content_type="text/html"))]
    result = cli("sync")
    assert result.exit_code == 1
    assert "not JSON" in result.output
    assert mirror_rows(sync_app)["user_00002"]["deleted_at"] is None


def test_connection_refused_is_explained(make_app):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = make_app(
        CLERK_SECRET_KEY="sk_test_x", CLERK_API_URL=f"http://127.0.0.1:{port}/v1", CLERK_API_BACKOFF_SECONDS="0.01"
    )
    result = app.test_cli_runner().invoke(args=["sync-clerk", "sync"])
    assert result.exit_code == 1
    assert f"Could not reach Clerk's Backend API at http://127.0.0.1:{port}/v1 (connection refused" in result.output


def test_no_secret_key_says_what_to_set(make_app):
    result = make_app().test_cli_runner().invoke(args=["sync-clerk", "sync"])
    assert result.exit_code == 1
    assert "CLERK_SECRET_KEY is not set" in result.output


def test_a_user_deleted_during_the_listing_is_tombstoned_only_after_the_404(clerk, cli, sync_app):
    clerk.put(*(user(i) for i in range(1200)))
    seed(sync_app, *(user(i) for i in range(1200)))
    not_yet_listed, already_listed = "user_00700", "user_00100"

    def between_pages(offset):
        if offset == 500:  # after the first page was read
            clerk.delete(not_yet_listed)
            clerk.delete(already_listed)

    clerk.before_page = between_pages

    result = cli("sync")

    assert result.exit_code == 0, result.output
    # user_00700 is absent from the listing: tombstoned once Clerk answers 404 for it.
    # Deleting user_00100 (already read) moved everyone after it up one place, so user_00500
    # slid onto the first page and the listing skipped it: Clerk's answer (the user) keeps it.
    assert sorted(clerk.user_requests()) == ["user_00500", not_yet_listed]
    rows = mirror_rows(sync_app)
    assert rows[not_yet_listed]["deleted_at"] is not None
    assert rows["user_00500"]["deleted_at"] is None
    # user_00100 was in the listing; its own user.deleted webhook (or the next sync) tombstones it.
    assert rows[already_listed]["deleted_at"] is None
    assert sum(row["deleted_at"] is not None for row in rows.values()) == 1
    assert cli("sync").exit_code == 0
    assert mirror_rows(sync_app)[already_listed]["deleted_at"] is not None


def test_a_missing_user_that_clerk_still_has_is_kept(clerk, cli, sync_app):
    # Clerk's listing can miss a user (offsets shift); only a 404 tombstones.
    clerk.put(*(user(i) for i in range(3)))
    seed(sync_app, *(user(i) for i in range(3)))
    hidden = user(1)
    clerk.faults = [(lambda path: path == "/v1/users", Response(json.dumps([user(0), user(2)])))]
    result = cli("sync")
    assert result.exit_code == 0, result.output
    assert clerk.user_requests() == [hidden["id"]]
    assert mirror_rows(sync_app)[hidden["id"]]["deleted_at"] is None


def test_when_the_404_check_fails_nothing_is_tombstoned(clerk, cli, sync_app):
    clerk.put(user(1))
    seed(sync_app, user(1), user(2))
    clerk.faults = [(lambda path: path == "/v1/users/user_00002", Response("down", status=503)) for _ in range(4)]
    result = cli("sync")
    assert result.exit_code == 1
    assert "Checking user_00002, missing from the listing, failed" in result.output
    assert summary(result)["failed"] == "1"
    assert mirror_rows(sync_app)["user_00002"]["deleted_at"] is None


def test_users_created_during_the_run_are_not_lost(clerk, cli, sync_app):
    clerk.put(*(user(i) for i in range(700)))

    def between_pages(offset):
        if offset == 500:  # two sign-ups while the listing runs: appended at the end, oldest first
            clerk.put(user(5000), user(5001))

    clerk.before_page = between_pages

    result = cli("sync")

    assert result.exit_code == 0, result.output
    rows = mirror_rows(sync_app)
    assert rows["user_05000"]["deleted_at"] is None
    assert rows["user_05001"]["deleted_at"] is None
    assert len(rows) == 702


def test_a_user_created_after_the_last_page_is_kept_alive_by_the_404_check(clerk, cli, sync_app):
    clerk.put(*(user(i) for i in range(10)))
    late = user(9000)
    seed(sync_app, late)  # its webhook arrived, yet the listing ran before it existed in Clerk's pages
    clerk.faults = [(lambda path: path == "/v1/users", Response(json.dumps(clerk.ordered())))]
    clerk.put(late)
    result = cli("sync")
    assert result.exit_code == 0, result.output
    assert clerk.user_requests() == [late["id"]]
    assert mirror_rows(sync_app)[late["id"]]["deleted_at"] is None


def test_too_many_users_missing_from_clerk_tombstones_none(clerk, cli, sync_app):
    clerk.put(user(1))
    seed(sync_app, *(user(i) for i in range(1, 8)))
    result = cli("sync", "--max-tombstones", "5")
    assert result.exit_code == 1
    assert "6 live users of the mirror are not in Clerk's listing, more than --max-tombstones (5)" in result.output
    assert clerk.user_requests() == []
    assert all(row["deleted_at"] is None for row in mirror_rows(sync_app).values())
    assert cli("sync", "--max-tombstones", "6").exit_code == 0
    assert sum(row["deleted_at"] is not None for row in mirror_rows(sync_app).values()) == 6


def test_a_user_clerk_cannot_describe_counts_as_failed_and_blocks_nothing_else(clerk, cli, sync_app):
    broken = copy.deepcopy(user(2))
    del broken["updated_at"]
    clerk.put(user(1), broken, user(3))
    seed(sync_app, user(2))
    result = cli("sync")
    assert result.exit_code == 1
    assert summary(result)["failed"] == "1"
    rows = mirror_rows(sync_app)
    assert rows["user_00002"]["deleted_at"] is None  # it exists in Clerk: never tombstoned
    assert {"user_00001", "user_00003"} <= rows.keys()


@pytest.mark.parametrize("batch_size", ["0", "1001"])
def test_batch_size_is_bounded(cli, batch_size):
    assert cli("sync", "--batch-size", batch_size).exit_code == 2


def test_a_listing_that_repeats_a_page_tombstones_nothing(clerk, cli, sync_app):
    """Clerk's pages are staged in PostgreSQL, not kept in memory: a page of users already met is still told apart."""
    clerk.put(*(user(i) for i in range(1200)))
    seed(sync_app, *(user(i) for i in range(1200)), user(5000))  # user_05000: gone from Clerk
    first_page = clerk.ordered()[:500]
    second_page = lambda path: path == "/v1/users" and len(clerk.list_requests()) == 2  # noqa: E731
    clerk.faults = [(second_page, Response(json.dumps(first_page), content_type="application/json"))]

    result = cli("sync")

    assert result.exit_code == 1
    assert "Clerk's listing repeated users already listed at offset 500" in result.output
    assert clerk.user_requests() == []
    assert mirror_rows(sync_app)["user_05000"]["deleted_at"] is None


def test_a_page_that_repeats_some_users_is_staged_once_and_the_missing_are_checked(clerk, cli, sync_app):
    clerk.put(*(user(i) for i in range(1000)))
    seed(sync_app, *(user(i) for i in range(1000)), user(5000))  # user_05000: gone from Clerk
    shifted = clerk.ordered()[450:950]  # 50 users of the first page again; 950-999 not listed
    second_page = lambda path: path == "/v1/users" and len(clerk.list_requests()) == 2  # noqa: E731
    clerk.faults = [(second_page, Response(json.dumps(shifted), content_type="application/json"))]

    result = cli("sync")

    assert result.exit_code == 0, result.output
    assert "Checked 51 live users missing from the listing one by one with Clerk." in result.output
    assert sorted(clerk.user_requests()) == [f"user_{i:05d}" for i in range(950, 1000)] + ["user_05000"]
    rows = mirror_rows(sync_app)
    assert rows["user_05000"]["deleted_at"] is not None
    assert sum(row["deleted_at"] is not None for row in rows.values()) == 1
    assert summary(result)["tombstoned"] == "1"


@pytest.fixture
def no_autovacuum(sync_app):
    """Only the sync analyses `users` during the test (as on a server with autovacuum off or behind)."""
    with sync_app.app_context():
        db.session.execute(text("ALTER TABLE users SET (autovacuum_enabled = false)"))
        db.session.execute(text("ANALYZE users"))  # the planner now believes the mirror is empty
        db.session.commit()
    yield
    with sync_app.app_context():
        db.session.execute(text("ALTER TABLE users RESET (autovacuum_enabled)"))
        db.session.commit()


def _planner_row_estimate(app) -> int:
    with app.app_context():
        return db.session.execute(
            text("SELECT reltuples::bigint FROM pg_class WHERE oid = 'users'::regclass")
        ).scalar_one()


def test_a_sync_filling_the_mirror_refreshes_the_statistics_of_users_as_it_goes(clerk, sync_app, no_autovacuum):
    """Planned against an empty table's statistics, the e-mail hand-over scanned all of `users` for each
    batch; a first sync at 1,000,000 users slowed with the square of the users (bench/README.md)."""
    clerk.put(*(user(i) for i in range(1200)))
    assert _planner_row_estimate(sync_app) <= 0

    with sync_app.app_context():
        report = reconcile.sync(clerk_api(), analyze_after=500)

    assert report.ok and report.created == 1200
    # Analysed after 500 and 1,000 rows written (each time a tenth of the table, and at least 500):
    # the planner's estimate is the table's size then, not the empty table it started from.
    assert _planner_row_estimate(sync_app) == 1000


def test_a_dry_run_does_not_analyse(clerk, sync_app, no_autovacuum):
    clerk.put(*(user(i) for i in range(600)))

    with sync_app.app_context():
        report = reconcile.sync(clerk_api(), analyze_after=100, dry_run=True)

    assert report.created == 600
    assert _planner_row_estimate(sync_app) <= 0
