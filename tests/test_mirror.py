"""The mirror's rules, called directly as webhooks, first sign-in and sync call them."""

import threading

import psycopg
import pytest
from sqlalchemy import NullPool, create_engine, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from shop import mirror
from shop.clerk.users import parse_user
from shop.extensions import db
from shop.models import Role, User
from tests.support import clerk_user, libpq, wait_for_a_lock_wait


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.rollback()


def one_snapshot(conn, snapshot) -> mirror.Change:
    return mirror.apply_snapshot(conn, snapshot)


def a_batch_of_one(conn, snapshot) -> mirror.Change:
    return mirror.apply_snapshots(conn, [snapshot])[snapshot.clerk_id]


@pytest.fixture(params=[one_snapshot, a_batch_of_one], ids=["apply_snapshot", "apply_snapshots"])
def apply(request, ctx):
    """Applies a snapshot through the webhook's path or the sync's: every rule below holds on both."""
    path = request.param

    def apply_one(clerk_id, **fields) -> mirror.Change:
        change = path(db.session.connection(), parse_user(clerk_user(clerk_id, **fields)))
        db.session.commit()
        return change

    return apply_one


def delete(clerk_id):
    change = mirror.apply_deletion(db.session.connection(), clerk_id)
    db.session.commit()
    return change


def row(clerk_id) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.clerk_id == clerk_id))


def test_create_then_update_then_unchanged(apply):
    assert apply("user_a", email="a@example.com", updated_at=1) == mirror.Change.CREATED
    assert apply("user_a", email="a2@example.com", updated_at=2) == mirror.Change.UPDATED
    assert apply("user_a", email="a2@example.com", updated_at=3) == mirror.Change.UNCHANGED
    assert row("user_a").email == "a2@example.com"
    assert row("user_a").role == Role.CLIENT


def test_stale_snapshot_changes_nothing(apply):
    apply("user_a", email="new@example.com", updated_at=20)
    assert apply("user_a", email="old@example.com", updated_at=10) == mirror.Change.UNCHANGED
    assert row("user_a").email == "new@example.com"
    assert row("user_a").clerk_updated_at == 20


def test_snapshot_with_the_same_updated_at_applies(apply):
    apply("user_a", first_name="One", updated_at=5)
    assert apply("user_a", first_name="Two", updated_at=5) == mirror.Change.UPDATED


def test_deletion_erases_personal_data_and_keeps_the_row(apply):
    apply("user_a", email="a@example.com")
    assert delete("user_a") == mirror.Change.TOMBSTONED
    tomb = row("user_a")
    assert tomb.deleted_at is not None
    assert (tomb.email, tomb.first_name, tomb.last_name, tomb.image_url) == (None, None, None, None)
    assert delete("user_a") == mirror.Change.ALREADY_DELETED


def test_nothing_resurrects_a_tombstone(apply):
    apply("user_a", email="a@example.com", updated_at=1)
    delete("user_a")
    assert apply("user_a", email="a@example.com", updated_at=10**12) == mirror.Change.UNCHANGED
    assert row("user_a").deleted_at is not None
    assert row("user_a").email is None


def test_deletion_before_creation_leaves_a_tombstone(apply):
    assert delete("user_a") == mirror.Change.TOMBSTONED
    assert apply("user_a", email="a@example.com") == mirror.Change.UNCHANGED
    assert row("user_a").deleted_at is not None


def test_email_is_handed_to_the_newest_owner_without_merging(apply):
    apply("user_old", email="Shared@Example.com", updated_at=1)
    apply("user_new", email="shared@example.com", updated_at=2)
    old, new = row("user_old"), row("user_new")
    assert old.id != new.id
    assert new.email == "shared@example.com"
    assert old.email is None and old.needs_resync
    # When Clerk's fresh data for the old user arrives, it is repaired and unflagged.
    apply("user_old", email="old@example.com", updated_at=3)
    assert row("user_old").email == "old@example.com"
    assert not row("user_old").needs_resync


def test_a_stale_snapshot_does_not_take_an_email(apply):
    apply("user_a", email="a-new@example.com", updated_at=20)
    apply("user_b", email="a-old@example.com", updated_at=1)
    apply("user_a", email="a-old@example.com", updated_at=10)  # stale for user_a
    assert row("user_b").email == "a-old@example.com"
    assert not row("user_b").needs_resync


def test_tombstones_do_not_hold_emails(apply):
    apply("user_a", email="reused@example.com")
    delete("user_a")
    assert apply("user_b", email="reused@example.com") == mirror.Change.CREATED


@pytest.mark.parametrize("metadata", ["public_metadata", "unsafe_metadata", "private_metadata"])
def test_metadata_never_changes_the_role(apply, metadata):
    apply("user_a", updated_at=1, **{metadata: {"role": "ADMIN"}})
    assert row("user_a").role == Role.CLIENT


def test_clerk_data_never_lowers_an_operators_role(apply):
    apply("user_a", updated_at=1)
    row("user_a").role = Role.ADMIN
    db.session.commit()
    apply("user_a", first_name="Changed", updated_at=2, public_metadata={"role": "CLIENT"})
    assert row("user_a").role == Role.ADMIN
    assert row("user_a").first_name == "Changed"


@pytest.mark.parametrize(
    ("path", "attempts"), [(one_snapshot, 2), (a_batch_of_one, 1)], ids=["apply_snapshot", "apply_snapshots"]
)
def test_a_claim_racing_an_uncommitted_claim_ends_with_the_late_claimer_holding_it(app, database_url, path, attempts):
    """Both claimers find the address free; the second waits on the first's uncommitted row and
    the unique index refuses it. A single snapshot's transaction aborts and, run again, finds the
    committed holder and takes the address; a batch returns to its savepoint and does the same
    within its one transaction."""
    other = create_engine(database_url, poolclass=NullPool)
    transactions = []

    def transaction() -> mirror.Change:
        transactions.append(1)
        with app.app_context():
            try:
                change = path(db.session.connection(), parse_user(clerk_user("user_late", email="race@example.com")))
                db.session.commit()
                return change
            finally:
                db.session.rollback()

    with other.connect() as first:
        mirror.apply_snapshot(first, parse_user(clerk_user("user_first", email="race@example.com")))
        outcome = {}
        worker = threading.Thread(target=lambda: outcome.update(change=mirror.retry_email_conflicts(transaction)))
        worker.start()
        wait_for_a_lock_wait(database_url)  # the second claim's INSERT waits on the first's uncommitted row
        first.commit()
        worker.join(timeout=30)
    other.dispose()
    assert outcome["change"] == mirror.Change.CREATED
    assert len(transactions) == attempts
    with app.app_context():
        assert row("user_late").email == "race@example.com"
        assert row("user_first").email is None and row("user_first").needs_resync


def test_the_race_aborts_a_single_snapshots_transaction_that_is_not_run_again(app, database_url):
    """`apply_snapshot` leaves the retry to its caller (`retry_email_conflicts`); a batch never gets here."""
    other = create_engine(database_url, poolclass=NullPool)
    with other.connect() as first, app.app_context():
        mirror.apply_snapshot(first, parse_user(clerk_user("user_first", email="race@example.com")))
        failure = {}

        def claim() -> None:
            with app.app_context():
                try:
                    mirror.apply_snapshot(
                        db.session.connection(), parse_user(clerk_user("user_late", email="race@example.com"))
                    )
                except IntegrityError as exc:
                    failure["exc"] = exc
                finally:
                    db.session.rollback()

        worker = threading.Thread(target=claim)
        worker.start()
        wait_for_a_lock_wait(database_url)
        first.commit()
        worker.join(timeout=30)
    other.dispose()
    assert mirror.is_email_conflict(failure["exc"])


def test_a_transaction_that_loses_a_deadlock_runs_again(app, database_url):
    """PostgreSQL aborts one side of a deadlock (concurrent upserts of one new user can meet so on the
    clerk_id and e-mail indexes); the mirror's retry runs the losing transaction again, as it does
    for a concurrent e-mail claim. A real deadlock: two transactions taking two locks in opposite
    orders, this side checking for deadlocks first (deadlock_timeout 10 ms against the other's 10 s)."""
    first, second = 0x7E57, 0x7E58
    this_holds_first, other_holds_second = threading.Event(), threading.Event()
    other_done: list[str] = []

    def other_transaction() -> None:
        with psycopg.connect(libpq(database_url)) as conn:
            conn.execute("SET deadlock_timeout = '10s'")
            assert this_holds_first.wait(10)
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (second,))
            other_holds_second.set()
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (first,))  # waits for ours
            other_done.append("committed")

    attempts: list[int] = []

    def transaction() -> str:
        attempts.append(len(attempts) + 1)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL deadlock_timeout = '10ms'")
            conn.execute(select(func.pg_advisory_xact_lock(first)))
            if len(attempts) == 1:
                this_holds_first.set()
                assert other_holds_second.wait(10)
                wait_for_a_lock_wait(database_url)  # the other waits for `first`, which this holds
            conn.execute(select(func.pg_advisory_xact_lock(second)))  # the cycle: PostgreSQL aborts this side
        return "written"

    other = threading.Thread(target=other_transaction)
    with app.app_context():
        other.start()
        try:
            assert mirror.retry_email_conflicts(transaction) == "written"
        finally:
            other.join(10)
    assert attempts == [1, 2] and other_done == ["committed"]


def test_other_database_errors_are_not_run_again(app):
    attempts: list[int] = []

    def transaction() -> None:
        attempts.append(1)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("SELECT 1 / 0")

    with app.app_context(), pytest.raises(DBAPIError):
        mirror.retry_email_conflicts(transaction)
    assert attempts == [1]
