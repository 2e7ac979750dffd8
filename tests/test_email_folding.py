"""One e-mail key, computed in Python, for every comparison and for the unique index.

Each tricky pair goes through the three paths that write the mirror (webhooks, first sign-in, sync)
on the real PostgreSQL, whose lower() disagrees with Python's (lower('İ') is 'i' here): the pair is
one address or two exactly as `email_key` says, never a 500, and no address reaches a log line.
"""

from __future__ import annotations

import json
import logging
import unicodedata

import flask_migrate
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from shop import mirror
from shop.auth.roles import find_by_email_or_clerk_id
from shop.clerk.users import parse_user
from shop.database import describe_error
from shop.extensions import db
from shop.mirror import email_key
from shop.models import Role, User
from tests.support import clerk_user, event
from tests.sync.conftest import mirror_rows
from tests.sync.standin import SECRET_KEY, StandInClerk, serve

NFD = "NFD"
# A writer outside the mirror's rules: the second row of this address meets the unique index.
CLASH = text("INSERT INTO users (clerk_id, email, email_key) VALUES (:id, 'race@example.com', 'race@example.com')")

# (the address a live user holds, the address another user claims later, one address?)
TRICKY = [
    pytest.param("bill@example.com", "Bill@EXAMPLE.com", True, id="mixed-case"),
    pytest.param("bill@example.com", "Bİll@example.com", False, id="dotted-capital-I"),
    pytest.param("bill@example.com", "bıll@example.com", False, id="dotless-i"),
    pytest.param("BILL@example.com", "bill@example.com", True, id="upper-case-I"),
    pytest.param("straße@example.de", "strasse@example.de", False, id="sharp-s-is-not-ss"),
    pytest.param("straße@example.de", "STRAẞE@example.de", True, id="capital-sharp-s"),
    pytest.param("bill@example.com", "ｂｉｌｌ＠ｅｘａｍｐｌｅ．ｃｏｍ", True, id="fullwidth"),
    pytest.param("bill@example.com", "bi\u200bll@example.com", True, id="zero-width-space"),
    pytest.param("bill@example.com", "\u200dbill@exam\u00adple.com\ufeff", True, id="zwj-soft-hyphen-bom"),
    pytest.param("josé@example.com", unicodedata.normalize(NFD, "josé@example.com"), True, id="nfc-nfd"),
    pytest.param(unicodedata.normalize(NFD, "JOSÉ@example.com"), "josé@example.com", True, id="nfd-upper"),
    pytest.param("kate@example.com", "\u212aate@example.com", True, id="kelvin-sign"),
    pytest.param("bill@example.com", "bill@example.org", False, id="different-domain"),
]


@pytest.mark.parametrize(("held", "claimed", "one_address"), TRICKY)
def test_the_key_says_which_addresses_are_one(held, claimed, one_address):
    assert (email_key(held) == email_key(claimed)) is one_address


@given(st.text())
def test_the_key_is_idempotent(address):
    key = email_key(address)
    assert email_key(key) == key


@pytest.fixture(autouse=True)
def no_address_in_logs(caplog):
    """Every test here: no address, nor its key, in any log line at any level (messages and tracebacks)."""
    caplog.set_level(logging.DEBUG)
    yield
    addresses = {value for held, claimed, _ in (p.values for p in TRICKY) for value in (held, claimed)}
    addresses |= {email_key(address) for address in addresses} | {"race@example.com"}
    for record in caplog.records:
        logged = record.getMessage() + (record.exc_text or "")
        assert not [address for address in addresses if address in logged], record.getMessage()


@pytest.fixture
def clerk():
    with serve(StandInClerk()) as standin:
        yield standin


@pytest.fixture
def paths_app(make_app, clerk):
    """An app whose first sign-in and sync ask the stand-in Clerk (tests/sync/standin.py)."""
    return make_app(CLERK_SECRET_KEY=SECRET_KEY, CLERK_API_URL=clerk.url)


def expect(app, held, claimed, one_address):
    rows = mirror_rows(app)
    assert rows["user_claimer"]["email"] == claimed
    holder = rows["user_holder"]
    if one_address:
        assert holder["email"] is None and holder["needs_resync"]  # gave the address up; accounts not merged
    else:
        assert holder["email"] == held and not holder["needs_resync"]
    with app.app_context():
        keys = dict(db.session.execute(select(User.clerk_id, User.email_key)).all())
    assert keys["user_claimer"] == email_key(claimed)
    assert keys["user_holder"] == (None if one_address else email_key(held))


def deliver_to(app, payload):
    from tests.support import signed_headers

    body = json.dumps(payload)
    return app.test_client().post("/api/webhooks/clerk", data=body, headers=signed_headers(body))


@pytest.mark.parametrize(("held", "claimed", "one_address"), TRICKY)
def test_webhooks(paths_app, held, claimed, one_address):
    holder = clerk_user("user_holder", email=held, updated_at=1)
    assert deliver_to(paths_app, event("user.created", holder)).json == {"status": "processed"}
    claimer = clerk_user("user_claimer", email=claimed, updated_at=2)
    assert deliver_to(paths_app, event("user.created", claimer)).json == {"status": "processed"}
    expect(paths_app, held, claimed, one_address)
    with paths_app.app_context():
        assert db.session.scalar(text("SELECT count(*) FROM webhook_events WHERE status = 'processed'")) == 2


@pytest.mark.parametrize(("held", "claimed", "one_address"), TRICKY)
def test_first_sign_in(paths_app, clerk, tokens, held, claimed, one_address):
    deliver_to(paths_app, event("user.created", clerk_user("user_holder", email=held, updated_at=1)))
    clerk.put(clerk_user("user_claimer", email=claimed, updated_at=2))
    shopper = paths_app.test_client()
    shopper.set_cookie("__session", tokens.mint("user_claimer"))
    assert shopper.get("/api/me").json["email"] == claimed
    for page in ("/", "/cart", "/orders", "/account"):
        assert shopper.get(page).status_code == 200, page
    expect(paths_app, held, claimed, one_address)


@pytest.mark.parametrize(("held", "claimed", "one_address"), TRICKY)
def test_sync(paths_app, clerk, held, claimed, one_address):
    deliver_to(paths_app, event("user.created", clerk_user("user_holder", email=held, updated_at=1)))
    # Clerk now has the holder on another address and the claimer on this one (the address moved).
    clerk.put(
        clerk_user("user_holder", email=held if not one_address else "moved@example.net", updated_at=1),
        clerk_user("user_claimer", email=claimed, updated_at=2),
    )
    result = paths_app.test_cli_runner().invoke(args=["sync-clerk", "user", "user_claimer"])
    assert result.exit_code == 0, result.output
    expect(paths_app, held, claimed, one_address)
    result = paths_app.test_cli_runner().invoke(args=["sync-clerk", "sync"])
    assert result.exit_code == 0, result.output
    rows = mirror_rows(paths_app)
    assert rows["user_claimer"]["email"] == claimed
    assert rows["user_holder"]["email"] == (held if not one_address else "moved@example.net")
    assert not rows["user_holder"]["needs_resync"]


@pytest.mark.parametrize(("held", "claimed", "one_address"), TRICKY)
def test_sync_of_both_in_one_batch(paths_app, clerk, held, claimed, one_address):
    clerk.put(
        clerk_user("user_holder", email=held, updated_at=1, created_at=1),
        clerk_user("user_claimer", email=claimed, updated_at=2, created_at=2),
    )
    result = paths_app.test_cli_runner().invoke(args=["sync-clerk", "sync"])
    assert result.exit_code == 0, result.output
    expect(paths_app, held, claimed, one_address)


@pytest.mark.parametrize(("held", "claimed", "one_address"), TRICKY)
def test_set_role_finds_the_user_by_any_form_of_the_address(app, make_user, held, claimed, one_address):
    make_user("user_holder", email=held)
    with app.app_context():
        found = find_by_email_or_clerk_id(claimed)
        assert (found is not None and found.clerk_id == "user_holder") is one_address


def test_admin_search_compares_keys(client, sign_in, make_user):
    sign_in("user_admin", email="admin@example.com", role=Role.ADMIN)
    make_user("user_holder", email="ｂｉｌｌ@example.com")
    page = client.get("/admin/users", query_string={"q": "BILL@EXAMPLE"})
    assert page.status_code == 200
    assert "user_holder" in page.get_data(as_text=True)


def test_a_database_error_is_logged_without_the_row_it_quotes(app, caplog):
    """PostgreSQL's DETAIL names the refused e-mail: the log line and the page keep only the primary message."""

    def clash():
        for clerk_id in ("user_one", "user_two"):
            db.session.execute(
                CLASH,
                {"id": clerk_id},
            )
        return "unreachable"

    app.add_url_rule("/test/clash", view_func=clash)  # a view that meets the unique index, as a real race would
    response = app.test_client().get("/test/clash")
    assert response.status_code == 500
    assert b"race@example.com" not in response.data
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1 and "UniqueViolation" in logged[0].getMessage()
    assert logged[0].exc_info is None  # the stack is in the message, without the exception's text


def test_describe_error_drops_postgres_detail(database_url):
    engine = create_engine(database_url, poolclass=NullPool)
    with pytest.raises(IntegrityError) as raised, engine.begin() as conn:
        for clerk_id in ("user_one", "user_two"):
            conn.execute(
                CLASH,
                {"id": clerk_id},
            )
    engine.dispose()
    assert "race@example.com" in str(raised.value.orig)  # what the driver says: the DETAIL quotes the key
    described = describe_error(raised.value)
    assert described.startswith("UniqueViolation: duplicate key value violates unique constraint")
    assert "race@example.com" not in described


def test_the_migration_keys_existing_rows_and_releases_what_the_key_joins(app, database_url):
    """0003 on data written under 0002's lower(email) index: rows that the key counts as one address
    (a fullwidth copy) keep the newest claim; the older gives it up, as the mirror would. The
    downgrade does the same for rows that lower() joins and the key told apart (Bİpek, bipek)."""
    engine = create_engine(database_url, poolclass=NullPool)
    with app.app_context():
        # Two live addresses the key tells apart but lower() joins: the downgrade resolves them too.
        for clerk_id, address, updated_at in (
            ("user_dotted", "Bİpek@example.org", 5),
            ("user_plain", "bipek@example.org", 6),
        ):
            mirror.apply_snapshot(
                db.session.connection(), parse_user(clerk_user(clerk_id, email=address, updated_at=updated_at))
            )
        db.session.commit()
        db.engine.dispose()
        flask_migrate.downgrade(revision="0002_storefront")
        try:
            with engine.connect() as conn:
                downgraded = dict(conn.execute(text("SELECT clerk_id, email FROM users")).all())
            assert downgraded == {"user_dotted": None, "user_plain": "bipek@example.org"}
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO users (clerk_id, email, clerk_updated_at, deleted_at) VALUES "
                        "('user_old', 'bill@example.com', 1, NULL),"
                        "('user_new', 'ｂｉｌｌ@example.com', 2, NULL),"
                        "('user_turkish', 'İpek@example.com', 3, NULL),"
                        "('user_gone', NULL, 4, now())"
                    )
                )
        finally:
            flask_migrate.upgrade()
    with engine.connect() as conn:
        rows = {row.clerk_id: row for row in conn.execute(text("SELECT * FROM users"))}
    engine.dispose()
    assert rows["user_new"].email == "ｂｉｌｌ@example.com" and rows["user_new"].email_key == "bill@example.com"
    assert rows["user_old"].email is None and rows["user_old"].email_key is None and rows["user_old"].needs_resync
    assert rows["user_turkish"].email_key == email_key("İpek@example.com") == "i̇pek@example.com"
    assert rows["user_gone"].email_key is None
