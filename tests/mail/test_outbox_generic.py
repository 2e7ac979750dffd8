"""The outbox is generic: it takes a ready message with its own de-duplication key, whatever the mail is
about (an order or nothing), writes it once per key, and sends it with a Message-ID made of its row."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from sqlalchemy import func, select

from shop.extensions import db
from shop.mail import outbox
from shop.mail.models import OutboxMail


@pytest.fixture
def mail_app(make_app, tmp_path):
    """No SMTP server: the development mailbox, a folder of this test's own."""
    return make_app(MAIL_DIR=str(tmp_path))


def alert(key: str = "staff-alert.2026-12-14", **changes: object) -> outbox.Message:
    fields: dict = {
        "to": "staff@example.com",
        "subject": "Stock is low",
        "body": "Three mugs left.\n",
        "kind": "staff_alert",
        "dedup_key": key,
        **changes,
    }
    return outbox.Message(**fields)


def test_a_mail_of_no_order_is_written_once_per_key_and_sent(mail_app, tmp_path):
    with mail_app.app_context():
        assert outbox.enqueue(db.session, alert()) is True
        assert outbox.enqueue(db.session, alert(subject="Stock is low (again)")) is False  # the same key: no second
        assert outbox.enqueue(db.session, alert("staff-alert.2026-12-15")) is True  # another key, another mail
        db.session.commit()
        mails = db.session.execute(select(OutboxMail.id, OutboxMail.subject, OutboxMail.order_id)).all()
        assert sorted((subject, order_id) for _, subject, order_id in mails) == [
            ("Stock is low", None),
            ("Stock is low", None),
        ]
        report = outbox.send_due()
    assert (report.sent, report.failed, report.errors, report.unbuildable) == (2, 0, [], [])
    first = min(mail_id for mail_id, _, _ in mails)
    written = tmp_path / f"{first:06d}-staff_alert.eml"
    message = message_from_bytes(written.read_bytes(), policy=policy.default)
    assert message["Message-ID"] == f"<mail-{first}.staff-alert.2026-12-14@shop.invalid>"
    assert message["To"] == "staff@example.com" and message.get_content() == "Three mugs left.\n"


def test_a_rolled_back_transaction_leaves_no_mail(mail_app):
    with mail_app.app_context():
        assert outbox.enqueue(db.session, alert()) is True
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(OutboxMail)) == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"dedup_key": ""},
        {"dedup_key": "two words"},
        {"dedup_key": "at@sign"},
        {"dedup_key": "trailing."},
        {"dedup_key": "a..b"},
        {"dedup_key": "x" * 201},
        {"kind": "Staff Alert"},
        {"kind": "../escape"},
    ],
    ids=["empty", "space", "at", "trailing-dot", "two-dots", "too-long", "kind-space", "kind-path"],
)
def test_a_key_or_kind_of_the_wrong_form_is_refused_before_anything_is_written(mail_app, changes):
    """The key is part of the Message-ID and the kind of a file name: the caller's bug, said at once."""
    with mail_app.app_context():
        with pytest.raises(ValueError, match="not a"):
            outbox.enqueue(db.session, alert(**changes))
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(OutboxMail)) == 0
