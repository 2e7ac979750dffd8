"""The webhook history holds two sources, Clerk's (svix-id) and Stripe's (evt_ id): one replay for both."""

from __future__ import annotations

from typing import Any

from shop.webhooks.service import SOURCE as CLERK
from shop.webhooks.service import Outcome, replay_event

STRIPE = "stripe"
SOURCES = (CLERK, STRIPE)
OUTCOMES = frozenset(outcome.value for outcome in Outcome)


def replay(source: str, event_id: str, payload: Any) -> str:
    """Re-process a stored event through its source's live path; an Outcome value, or what went wrong."""
    if source == STRIPE:
        from shop.payments.events import replay_event as replay_stripe_event

        return replay_stripe_event(event_id, payload)
    return replay_event(event_id, payload)
