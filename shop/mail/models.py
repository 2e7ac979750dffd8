"""The outbox: an e-mail is a row written in the same transaction as the state change it reports,
then sent after commit. A rolled-back order leaves no row, so no e-mail; a failed send stays
`pending` with a later `next_attempt_at`, so none is lost."""

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


class MailStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up: after MAX_ATTEMPTS, or at once if it cannot be built; `flask mail retry` tries again


class OutboxMail(Model):
    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))  # order_confirmed, order_shipped
    to_address: Mapped[str | None] = mapped_column(Text)  # erased with the user's data if still unsent
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
        # One e-mail of each kind per order, whatever retries or replays of the change that wrote it.
        UniqueConstraint("order_id", "kind", name="uq_mail_outbox_order_kind"),
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="ck_mail_outbox_status"),
        Index("ix_mail_outbox_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    )
