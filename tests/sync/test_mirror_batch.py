"""`mirror.apply_snapshots` (the sync's set-based path) keeps every rule of `apply_snapshot`.

The tests that take `apply` run twice: the snapshots as one batch, and one by one through
`apply_snapshot` (the webhook's path), with the same expected outcome.
"""

import threading

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.pool import NullPool

from shop import mirror
from shop.clerk.users import parse_user
from shop.extensions import db
from shop.models import Role, User
from tests.support import clerk_user, wait_for_a_lock_wait

Change = mirror.Change


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app
        db.session.rollback()


def snap(clerk_id, **fields):
    return parse_user(clerk_user(clerk_id, **fields))


def batch(*snapshots):
    changes = mirror.apply_snapshots(db.session.connection(), snapshots)
    db.session.commit()
    return changes


def one_batch(conn, snapshots) -> dict[str, Change]:
    return mirror.apply_snapshots(conn, snapshots)


def one_by_one(conn, snapshots) -> dict[str, Change]:
    return {snapshot.clerk_id: mirror.apply_snapshot(conn, snapshot) for snapshot in snapshots}


@pytest.fixture(params=[one_batch, one_by_one], ids=["apply_snapshots", "apply_snapshot"])
def apply(request, ctx):
    """Applies snapshots (one per user, no two claiming one e-mail) as a batch, or each on its own."""
    path = request.param

    def apply_all(*snapshots) -> dict[str, Change]:
        changes = path(db.session.connection(), snapshots)
        db.session.commit()
        return changes

    return apply_all


def row(clerk_id) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.clerk_id == clerk_id))


def xmins():
    return dict(db.session.execute(text("SELECT clerk_id, xmin::text FROM users")).all())


def test_creates_updates_and_leaves_unchanged(apply):
    assert apply(snap("user_a", email="a@x.com", updated_at=1), snap("user_b", updated_at=1)) == {
        "user_a": Change.CREATED,
        "user_b": Change.CREATED,
    }
    assert apply(snap("user_a", email="a2@x.com", updated_at=2), snap("user_b", updated_at=2)) == {
        "user_a": Change.UPDATED,
        "user_b": Change.UNCHANGED,  # same data, newer updated_at: nothing to write
    }
    assert row("user_a").email == "a2@x.com"
    assert row("user_a").clerk_updated_at == 2


def test_unchanged_data_writes_no_row(apply):
    snapshots = [snap(f"user_{i}", email=f"{i}@x.com") for i in range(20)]
    apply(*snapshots)
    before = xmins()
    assert set(apply(*snapshots).values()) == {Change.UNCHANGED}
    assert xmins() == before


def test_stale_snapshots_change_nothing(apply):
    apply(snap("user_a", first_name="New", updated_at=20))
    assert apply(snap("user_a", first_name="Old", updated_at=10)) == {"user_a": Change.UNCHANGED}
    assert row("user_a").first_name == "New"


def test_tombstones_are_never_revived(apply):
    apply(snap("user_a", email="a@x.com", updated_at=1))
    mirror.apply_deletion(db.session.connection(), "user_a")
    mirror.apply_deletion(db.session.connection(), "user_never_seen")  # a deletion before the creation
    db.session.commit()
    changes = apply(snap("user_a", email="a@x.com", updated_at=10**12), snap("user_never_seen", updated_at=5))
    assert changes == {"user_a": Change.UNCHANGED, "user_never_seen": Change.UNCHANGED}
    assert row("user_a").deleted_at is not None and row("user_a").email is None
    assert row("user_never_seen").deleted_at is not None


def test_roles_are_never_touched(apply):
    apply(snap("user_a", updated_at=1))
    row("user_a").role = Role.ADMIN
    db.session.commit()
    apply(snap("user_a", first_name="Changed", updated_at=2, public_metadata={"role": "CLIENT"}))
    apply(snap("user_b", updated_at=1, unsafe_metadata={"role": "ADMIN"}))
    assert row("user_a").role == Role.ADMIN and row("user_a").first_name == "Changed"
    assert row("user_b").role == Role.CLIENT


def test_an_email_claimed_from_a_row_outside_the_batch_is_handed_over(apply):
    apply(snap("user_old", email="Shared@X.com", updated_at=1))
    apply(snap("user_new", email="shared@x.com", updated_at=2), snap("user_c", updated_at=2))
    assert row("user_new").email == "shared@x.com"
    assert row("user_old").email is None and row("user_old").needs_resync
    assert row("user_old").deleted_at is None  # never merged, never deleted


def test_a_swap_of_emails_within_one_batch(apply):
    apply(snap("user_a", email="one@x.com", updated_at=1), snap("user_b", email="two@x.com", updated_at=1))
    changes = apply(snap("user_a", email="two@x.com", updated_at=2), snap("user_b", email="one@x.com", updated_at=2))
    assert changes == {"user_a": Change.UPDATED, "user_b": Change.UPDATED}
    assert (row("user_a").email, row("user_b").email) == ("two@x.com", "one@x.com")
    assert not row("user_a").needs_resync and not row("user_b").needs_resync


def test_a_stale_snapshot_in_a_batch_takes_no_email(apply):
    apply(snap("user_a", email="a-new@x.com", updated_at=20), snap("user_b", email="a-old@x.com", updated_at=1))
    apply(snap("user_a", email="a-old@x.com", updated_at=10))  # stale for user_a
    assert row("user_b").email == "a-old@x.com" and not row("user_b").needs_resync


def test_two_claims_of_one_email_in_a_batch_go_to_the_newest(ctx):
    changes = batch(
        snap("user_new", email="same@x.com", updated_at=9),
        snap("user_old", email="SAME@x.com", updated_at=3),
        snap("user_c", email="c@x.com", updated_at=3),
    )
    assert changes == {"user_new": Change.CREATED, "user_old": Change.CREATED, "user_c": Change.CREATED}
    assert row("user_new").email == "same@x.com"
    assert row("user_old").email is None and row("user_old").needs_resync


def test_several_snapshots_of_one_user_count_as_the_newest(ctx):
    changes = batch(snap("user_a", first_name="Two", updated_at=2), snap("user_a", first_name="One", updated_at=1))
    assert changes == {"user_a": Change.CREATED}
    assert row("user_a").first_name == "Two"


def test_the_batch_takes_a_few_statements_not_three_per_user(ctx):
    statements = []
    engine = db.engine

    def count(*args):
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        batch(*(snap(f"user_{i}", email=f"{i}@x.com") for i in range(500)))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    dml = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE"))]
    assert len(dml) <= 4, dml  # locks, release, upsert (plus the savepoint's bookkeeping)
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 500


def test_preview_says_what_a_batch_would_do_and_writes_nothing(ctx):
    batch(snap("user_a", first_name="A", updated_at=1), snap("user_b", updated_at=1), snap("user_t", updated_at=1))
    mirror.apply_deletion(db.session.connection(), "user_t")
    db.session.commit()
    before = xmins()
    incoming = [
        snap("user_a", first_name="A2", updated_at=2),
        snap("user_b", updated_at=1),
        snap("user_c", updated_at=1),
        snap("user_t", updated_at=9),
    ]
    preview = mirror.preview_snapshots(db.session.connection(), incoming)
    db.session.rollback()
    assert xmins() == before
    assert preview == {
        "user_a": Change.UPDATED,
        "user_b": Change.UNCHANGED,
        "user_c": Change.CREATED,
        "user_t": Change.UNCHANGED,
    }
    assert batch(*incoming) == preview


def test_a_concurrent_claim_outside_the_rules_falls_back_to_one_by_one(ctx, database_url):
    """A writer that takes an e-mail without the mirror's lock (psql, say): the batch meets the
    unique index, returns to its savepoint, and applies its snapshots one at a time."""
    other = create_engine(database_url, poolclass=NullPool)
    with other.connect() as intruder:
        intruder.execute(
            text("INSERT INTO users (clerk_id, email, email_key) VALUES ('user_intruder', 'race@x.com', 'race@x.com')")
        )
        outcome = {}

        def run_batch():
            with ctx.app_context():
                outcome["changes"] = batch(snap("user_claim", email="race@x.com", updated_at=5), snap("user_z"))

        worker = threading.Thread(target=run_batch)
        worker.start()
        wait_for_a_lock_wait(database_url)  # the batch's INSERT waits on the intruder's uncommitted row
        intruder.commit()
        worker.join(timeout=30)
    other.dispose()
    assert outcome["changes"] == {"user_claim": Change.CREATED, "user_z": Change.CREATED}
    assert row("user_claim").email == "race@x.com"
    assert row("user_intruder").email is None and row("user_intruder").needs_resync
