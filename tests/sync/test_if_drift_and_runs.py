"""`flask sync-clerk sync --if-drift` (nothing written when clean) and the sync_runs record of each real sync."""

from sqlalchemy import func, select
from werkzeug.wrappers import Response

from shop.extensions import db
from shop.models import SyncRun, WebhookEvent
from tests.sync.conftest import BASE_TIME, mirror_rows, seed, user


def sync_runs(app) -> list[SyncRun]:
    with app.app_context():
        runs = db.session.scalars(select(SyncRun).order_by(SyncRun.id)).all()
        db.session.expunge_all()
        return list(runs)


def row_counts(app) -> dict[str, int]:
    """Rows of every table the mirror's bookkeeping could write."""
    with app.app_context():
        return {
            "sync_runs": db.session.scalar(select(func.count()).select_from(SyncRun)),
            "webhook_events": db.session.scalar(select(func.count()).select_from(WebhookEvent)),
        }


def test_if_drift_writes_nothing_when_clerk_and_the_mirror_agree(clerk, cli, sync_app):
    clerk.put(*(user(i) for i in range(3)))
    seed(sync_app, *(user(i) for i in range(3)))
    before_rows, before_counts = mirror_rows(sync_app), row_counts(sync_app)

    result = cli("sync", "--if-drift")

    assert result.exit_code == 0, result.output
    assert "No drift (3 users agree, 2 API calls): nothing written." in result.output
    assert mirror_rows(sync_app) == before_rows  # xmin included: not one row rewritten
    assert row_counts(sync_app) == before_counts  # not even a sync_runs record
    assert len(clerk.list_requests()) == 1  # the comparison's listing only, no sync after it


def test_if_drift_syncs_when_users_differ_and_records_the_run(clerk, cli, sync_app):
    clerk.put(user(1), user(2, first_name="Renamed", updated_at=BASE_TIME + 50), user(3))
    seed(sync_app, user(1), user(2), user(4))  # 3 missing, 2 stale, 4 gone from Clerk

    result = cli("sync", "--if-drift")

    assert result.exit_code == 0, result.output
    assert "Drift: 1 missing, 1 stale, 1 gone from Clerk; syncing." in result.output
    rows = mirror_rows(sync_app)
    assert rows["user_00003"]["deleted_at"] is None and rows["user_00002"]["first_name"] == "Renamed"
    assert rows["user_00004"]["deleted_at"] is not None
    [run] = sync_runs(sync_app)
    assert (run.ok, run.created, run.updated, run.tombstoned, run.failed) == (True, 1, 1, 1, 0)
    assert (run.clerk_count, run.listed, run.error) == (3, 3, None)
    assert run.started_at <= run.finished_at
    assert cli("status").exit_code == 0


def test_if_drift_when_clerk_fails_exits_2_and_writes_nothing(clerk, cli, sync_app):
    seed(sync_app, user(1))
    clerk.faults = [(lambda path: True, Response("down", status=503)) for _ in range(4)]
    before_rows, before_counts = mirror_rows(sync_app), row_counts(sync_app)
    result = cli("sync", "--if-drift")
    assert result.exit_code == 2
    assert "HTTP 503" in result.output
    assert mirror_rows(sync_app) == before_rows and row_counts(sync_app) == before_counts


def test_a_failed_sync_is_recorded_with_its_first_error(clerk, cli, sync_app):
    clerk.put(*(user(i) for i in range(3)))
    clerk.faults = [(lambda path: path == "/v1/users", Response("down", status=500)) for _ in range(4)]
    result = cli("sync")
    assert result.exit_code == 1
    [run] = sync_runs(sync_app)
    assert run.ok is False and run.created == 0
    assert "HTTP 500" in run.error


def test_a_dry_run_records_nothing(clerk, cli, sync_app):
    clerk.put(user(1))
    assert cli("sync", "--dry-run").exit_code == 0
    assert sync_runs(sync_app) == []
