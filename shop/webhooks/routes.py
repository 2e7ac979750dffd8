"""`POST /api/webhooks/clerk`: Clerk's deliveries, through the shared inbox (every answer as in the contract)."""

from __future__ import annotations

from shop.extensions import csrf
from shop.webhooks import bp, inbox
from shop.webhooks.clerk import SOURCE


@bp.post("/api/webhooks/clerk")
@csrf.exempt
def clerk_webhook():
    return inbox.receive(SOURCE.name)
