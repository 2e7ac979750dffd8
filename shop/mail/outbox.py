"""E-mails through the outbox: written in the state change's transaction, sent after commit.

The outbox is generic: `enqueue` takes a ready `Message` (recipient, subject, body, a kind and a
de-duplication key) from whoever renders it (the store renders the order's mails in
shop/store/order_mail.py) and knows nothing of what the mail is about.

`enqueue` adds the row inside the caller's transaction (a rolled-back change leaves none, so no
e-mail), at most one per `dedup_key`; `send_due` sends what is due, one row at a time under
`FOR UPDATE SKIP LOCKED` (several senders never take the same row), and records success or the
error with a later retry. Its callers: `kick()` right after a commit, in a thread of this process,
and `flask mail send-pending` (cron, or by hand after an outage). A row is marked `sent` only after
the server accepted it; a crash between the two would resend it once, with the same Message-ID (made
of the row's id and key) so mail clients fold the copy.

A row is built into a message before anything is sent. A row that cannot be built (an address
with a line break, say) is marked `failed` at once with the reason: retrying cannot mend it, and
left pending it would stay first in line and stop every e-mail after it. A send the server did
not accept is retried later, and marked `failed` after MAX_ATTEMPTS. `retry_failed` makes failed
rows pending again (`flask mail retry`, the admin's E-mail page) once their cause is fixed.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, scoped_session

from shop.extensions import db
from shop.mail import transport
from shop.mail.models import DEDUP_KEY_LENGTH, MailStatus, OutboxMail

log = logging.getLogger(__name__)

# A de-duplication key: dot-separated words of letters, digits, '_' and '-' ("order-12.order_confirmed").
# It is part of the Message-ID, whose left-hand side allows no more than that (and no '@' or space).
DEDUP_KEY = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
KIND = re.compile(r"[a-z0-9_]{1,32}")  # also the development mailbox's file name: 000012-order_confirmed.eml
MAX_ATTEMPTS = 8
MAX_ERROR_LENGTH = 500


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4 … minutes after each failure, at most an hour."""
    return timedelta(minutes=min(2 ** (attempts - 1), 60))


@dataclass(frozen=True, slots=True)
class Message:
    """A mail ready to send, as its writer rendered it."""

    to: str
    subject: str
    body: str
    kind: str  # what sort of mail, for staff and the development mailbox's file name
    dedup_key: str  # the mail's own name: the outbox writes one row per key, ever
    order_id: int | None = None  # the order it is about, if any: only a link on the staff pages


def enqueue(session: Session | scoped_session[Any], message: Message) -> bool:
    """Add `message` to the outbox in the caller's transaction (no commit), unless a mail with its
    `dedup_key` is there already (written by a retry or a replay of the same change): False then.
    ValueError for a key or kind of the wrong form (a bug of the caller, not of the data)."""
    if len(message.dedup_key) > DEDUP_KEY_LENGTH or not DEDUP_KEY.fullmatch(message.dedup_key):
        raise ValueError(f"not a de-duplication key: {message.dedup_key!r}")
    if not KIND.fullmatch(message.kind):
        raise ValueError(f"not a mail kind: {message.kind!r}")
    statement = (
        insert(OutboxMail)
        .values(
            dedup_key=message.dedup_key,
            kind=message.kind,
            order_id=message.order_id,
            to_address=message.to,
            subject=message.subject,
            body=message.body,
        )
        .on_conflict_do_nothing(constraint="uq_mail_outbox_dedup_key")
        .returning(OutboxMail.id)
    )
    return session.execute(statement).first() is not None


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0  # not accepted by the server this time: retried later (or failed after MAX_ATTEMPTS)
    errors: list[str] = field(default_factory=list)
    # Rows that could not be built, marked failed at once (a line each, no address): the run itself did its job.
    unbuildable: list[str] = field(default_factory=list)


_DUE = text(
    """
    SELECT id FROM mail_outbox
    WHERE status = 'pending' AND (next_attempt_at <= now() OR :ignore_schedule) AND id > :after
    ORDER BY id LIMIT 1
    FOR UPDATE SKIP LOCKED
    """
)


def send_due(*, limit: int = 100, ignore_schedule: bool = False) -> SendReport:
    """Send up to `limit` due e-mails, each in its own transaction and at most once per call (in id
    order: a failing one is not retried until the next call). Needs an app context."""
    report = SendReport()
    config = current_app.config
    if config["MAIL_SMTP"] is None and config["SHOP_PRODUCTION"]:
        report.errors.append("No MAIL_URL or SMTP_HOST is set: e-mails stay in the outbox.")
        return report
    sender = config["MAIL_FROM"]
    try:
        transport.check_sender(sender)
    except transport.BuildError as exc:  # the setting's fault, not the rows': none of them is given up
        report.errors.append(f"MAIL_FROM cannot be used as the sender ({exc}): e-mails stay in the outbox.")
        return report
    mailbox = transport.Mailbox.from_config(config, current_app.instance_path)
    after = 0
    with Session(db.engine) as session:
        for _ in range(limit):
            mail_id = session.execute(_DUE, {"ignore_schedule": ignore_schedule, "after": after}).scalar()
            if mail_id is None:
                session.rollback()
                break
            after = mail_id
            # _DUE just locked this row (FOR UPDATE), so nobody can delete it before our commit.
            _send_one(session.get_one(OutboxMail, mail_id), mailbox, sender, report)
            session.commit()
    return report


def _send_one(mail: OutboxMail, mailbox: transport.Mailbox, sender: str, report: SendReport) -> None:
    """Build, then send: a row that cannot be built is given up now; a send that fails is retried later."""
    mail.attempts += 1
    try:
        message = transport.build_message(mail, sender)
    except transport.BuildError as exc:
        _give_up(mail, exc, report)
        return
    try:
        mail.file_name = mailbox.send(mail, message)
    except transport.SendError as exc:
        _record_send_failure(mail, exc, report)
    else:
        mail.status = MailStatus.SENT
        mail.sent_at = func.now()
        mail.last_error = None
        report.sent += 1
        log.info("mail %s (%s) sent", mail.id, mail.dedup_key)


def _give_up(mail: OutboxMail, exc: transport.BuildError, report: SendReport) -> None:
    mail.status = MailStatus.FAILED
    mail.last_error = f"The message could not be built: {exc}."[:MAX_ERROR_LENGTH]
    report.unbuildable.append(f"mail {mail.id}: {mail.last_error}")
    log.warning("mail %s (%s) cannot be built, marked failed: %s", mail.id, mail.kind, exc)


def _record_send_failure(mail: OutboxMail, exc: transport.SendError, report: SendReport) -> None:
    mail.last_error = str(exc)[:MAX_ERROR_LENGTH]
    if mail.attempts >= MAX_ATTEMPTS:
        mail.status = MailStatus.FAILED
    else:
        mail.next_attempt_at = func.now() + retry_delay(mail.attempts)
    report.failed += 1
    report.errors.append(f"mail {mail.id}: {mail.last_error}")
    log.warning("mail %s (%s) not sent, attempt %d: %s", mail.id, mail.kind, mail.attempts, exc)


@dataclass
class RetryReport:
    retried: list[int] = field(default_factory=list)  # pending again, due now
    not_failed: dict[int, str] = field(default_factory=dict)  # id: its status (pending or sent), left alone
    unknown: list[int] = field(default_factory=list)  # no such e-mail


def retry_failed(mail_ids: Collection[int] | None = None) -> RetryReport:
    """Make failed e-mails pending again, due now, with MAX_ATTEMPTS fresh attempts: those of
    `mail_ids`, or every failed one (None). Committed here; the caller then sends them (`kick()`,
    or `send_due()`). Only failed ones: a pending one is on its way already, a sent one must not go
    twice. The last error stays until the next attempt replaces or clears it.
    """
    report = RetryReport()
    if mail_ids is not None and not mail_ids:
        return report
    statement = (
        update(OutboxMail)
        .where(OutboxMail.status == MailStatus.FAILED)
        .values(status=MailStatus.PENDING, attempts=0, next_attempt_at=func.now())
        .returning(OutboxMail.id)
    )
    if mail_ids is not None:
        statement = statement.where(OutboxMail.id.in_(set(mail_ids)))
    with db.engine.begin() as conn:
        report.retried = sorted(conn.scalars(statement))
        others = set(mail_ids or ()) - set(report.retried)
        if others:
            found = conn.execute(select(OutboxMail.id, OutboxMail.status).where(OutboxMail.id.in_(others)))
            report.not_failed = dict(sorted(found.tuples()))
            report.unknown = sorted(others - set(report.not_failed))
    if report.retried:
        log.info("%d failed e-mail(s) pending again, retried by hand", len(report.retried))
    return report


def kick(app: Flask | None = None) -> None:
    """Send what is due now, in a thread, after the caller's commit (the request is not kept waiting)."""
    # Flask types `current_app` as the app itself, not as the proxy that has _get_current_object().
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> None:
        with app.app_context():
            try:
                send_due(limit=20)
            except Exception:  # the outbox keeps the rows; `flask mail send-pending` or the next kick retries
                log.exception("sending the outbox after commit failed")

    threading.Thread(target=run, name="mail-outbox", daemon=True).start()
