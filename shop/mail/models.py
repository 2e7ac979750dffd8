"""The outbox: an e-mail is a row written in the same transaction as the state change it reports,
then sent after commit. A rolled-back change leaves no row, so no e-mail; a failed send stays
`pending` with a later `next_attempt_at`, so none is lost.

A row is a ready message (recipient, subject, body) with its own `dedup_key`: whoever writes it
names the mail so that a retry or a replay of the change that wrote it finds the row there and
writes no second one. `order_id` is an optional reference to the order a mail is about, for the
staff pages' link and for SQL by hand; the outbox never reads it (a mail need not belong to one)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shop.extensions import Model

DEDUP_KEY_LENGTH = 200


class MailStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up: after MAX_ATTEMPTS, or at once if it cannot be built; `flask mail retry` tries again


class OutboxMail(Model):
    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # What the mail is, named by its writer: a key is written once (the form: shop.mail.outbox.DEDUP_KEY).
    dedup_key: Mapped[str] = mapped_column(String(DEDUP_KEY_LENGTH))
    kind: Mapped[str] = mapped_column(String(32))  # a label for staff and file names: order_confirmed, …
    # The order the mail is about, if any: the staff pages link to it. Nothing in the outbox reads it.
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    to_address: Mapped[str | None] = mapped_column(Text)  # NULL once erased by hand: then it cannot be sent
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=MailStatus.PENDING, server_default=MailStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    # Development without SMTP: the file under instance/mail/ it was written to.
    file_name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # One e-mail per key, whatever retries or replays of the change that wrote it.
        UniqueConstraint("dedup_key", name="uq_mail_outbox_dedup_key"),
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="ck_mail_outbox_status"),
        Index("ix_mail_outbox_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    )
