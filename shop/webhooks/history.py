"""The webhook history as staff and operators read it: the latest deliveries, by status and source.
One query for `flask webhooks list` and the admin's *Webhook events* page."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from shop.extensions import db
from shop.models import WebhookEvent


def latest(*, limit: int, status: str | None = None, source: str | None = None) -> Sequence[WebhookEvent]:
    """The newest deliveries first, optionally only one status and one source (both sources otherwise)."""
    statement = select(WebhookEvent)
    if source:
        statement = statement.where(WebhookEvent.source == source)
    if status:
        statement = statement.where(WebhookEvent.status == status)
    return db.session.scalars(statement.order_by(WebhookEvent.created_at.desc()).limit(limit)).all()
