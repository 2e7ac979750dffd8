"""The mirror's tables: `users` (Clerk's users plus the shop's role), `webhook_events` and `sync_runs`."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shop.extensions import Model


class Role(enum.StrEnum):
    CLIENT = "CLIENT"
    ADMIN = "ADMIN"


class UserFacts:
    """What the shop reads off a user, for the ORM row and for the signed-in user's snapshot alike."""

    id: int
    clerk_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    image_url: str | None
    role: Role
    deleted_at: datetime | None
    banned: bool  # Clerk's ban: signed out on the next request (shop.auth.session)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def display_name(self) -> str:
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return name or self.email or self.clerk_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "clerk_id": self.clerk_id,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "image_url": self.image_url,
            "role": self.role.value,
        }


class User(UserFacts, Model):
    """A Clerk user. Clerk-owned columns are written only by shop.mirror; `role` only by operators."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    clerk_id: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(Text)
    # What uniqueness and look-ups compare: shop.mirror.email_key(email), computed in Python only.
    email_key: Mapped[str | None] = mapped_column(Text)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(Text)
    # Clerk's three metadata objects; NULL when Clerk sent one the mirror would not keep (shop.clerk.users).
    # unsafe_metadata is written by the user's own browser: never authorise anything with it.
    public_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    private_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    unsafe_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    phone: Mapped[str | None] = mapped_column(Text)
    marketing_opt_in: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # Clerk's bans (enforced on every request: shop.auth.session) and locks (shown to staff only).
    banned: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    locked: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="user_role"), default=Role.CLIENT, server_default=Role.CLIENT.value
    )
    # Clerk's own updated_at (ms): a snapshot older than this is stale and changes nothing.
    clerk_updated_at: Mapped[int | None] = mapped_column(BigInteger)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when another Clerk user claimed this row's e-mail: this row is out of date.
    needs_resync: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # Set when a first sign-in created the row because the webhook had not arrived (shop.auth.provisioning).
    provisioned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        # E-mail is unique among live users, by its key (case, width, accents' form, invisible
        # characters); tombstones hold none.
        Index(
            "uq_users_live_email",
            email_key,
            unique=True,
            postgresql_where=text("deleted_at IS NULL AND email_key IS NOT NULL"),
        ),
        Index("ix_users_provisioned_at", provisioned_at, postgresql_where=text("provisioned_at IS NOT NULL")),
        Index(
            "ix_users_public_metadata",
            public_metadata,
            postgresql_using="gin",
            postgresql_ops={"public_metadata": "jsonb_path_ops"},
        ),
        Index(
            "ix_users_marketing_opt_in", created_at, postgresql_where=text("marketing_opt_in AND deleted_at IS NULL")
        ),
        # A writer that forgets the key would store an address the index cannot see.
        CheckConstraint("(email IS NULL) = (email_key IS NULL)", name="ck_users_email_key"),
    )


class WebhookStatus(enum.StrEnum):
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


class WebhookEvent(Model):
    """One delivery per (source, svix_id): the idempotency key Svix keeps across retries."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), default="clerk", server_default="clerk")
    svix_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(String(100))
    clerk_user_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[Any | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("source", "svix_id", name="uq_webhook_events_source_svix_id"),
        CheckConstraint("status IN ('received', 'processed', 'ignored', 'failed')", name="ck_webhook_events_status"),
        Index("ix_webhook_events_source_created_at", "source", "created_at"),
        Index("ix_webhook_events_status_created_at", "status", "created_at"),
        Index("ix_webhook_events_clerk_user_id", "clerk_user_id"),
    )


class SyncRun(Model):
    """One real `flask sync-clerk sync`: when, whether it completed, and what it had to repair.

    What a sync creates, updates or tombstones is drift the webhooks left behind; the latest row
    feeds `/metrics` and the admin dashboard."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    ok: Mapped[bool]
    clerk_count: Mapped[int | None]
    listed: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    created: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    updated: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    tombstoned: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    failed: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
