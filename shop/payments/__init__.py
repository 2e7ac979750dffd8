"""Stripe: Checkout Sessions, the signed webhook, refunds, and the shopper's return page.

Only this package talks to Stripe or imports `stripe` (and devtools/stripe_standin, the offline Stripe
the `stripe` library talks to over HTTP in development and tests). The order's rules (stock, statuses) stay
in shop.store; this package decides *when* they apply, from what Stripe says:

- `checkout.py`: a Checkout Session per order (stock is already held), the return page's check,
  the sweep of sessions past `expires_at`, expiring a shopper's earlier sessions, cancel-and-refund;
- `events.py`: what each Stripe event does to an order, idempotently and in any order;
- `webhook.py`: `POST /api/webhooks/stripe`, Stripe's source of the shared webhook inbox;
- `routes.py`: the return page from Stripe Checkout; `cli.py`: `flask payments sweep`.
"""

from __future__ import annotations

import stripe
from flask import Blueprint, current_app, has_request_context, request

bp = Blueprint("payments", __name__)

DEFAULT_STANDIN_BASE = "http://127.0.0.1:5000/dev-stripe"  # `make run`'s address, for commands outside a request
NETWORK_RETRIES = 2  # the library retries connection errors and 409/429/5xx, with the same idempotency key


class PaymentsUnavailable(Exception):
    """Stripe is not configured or could not be reached; the message is for the shopper."""


def api_base() -> str | None:
    """Where the stripe library sends its calls: the setting, or the stand-in on this very server."""
    config = current_app.config
    if config["STRIPE_API_BASE"]:
        return config["STRIPE_API_BASE"]
    if config["SHOP_DEV_STRIPE"]:
        return f"{request.host_url}dev-stripe" if has_request_context() else DEFAULT_STANDIN_BASE
    return None  # Stripe's own


def client() -> stripe.StripeClient:
    """A StripeClient for this app (one per API base), or PaymentsUnavailable when no key is set."""
    key = current_app.config["STRIPE_SECRET_KEY"]
    if not key:
        raise PaymentsUnavailable(
            "Payments are not set up on this shop yet, so orders cannot be paid; please try again later."
        )
    base = api_base()
    clients = current_app.extensions.setdefault("stripe_clients", {})
    if base not in clients:
        clients[base] = stripe.StripeClient(
            key, base_addresses={"api": base} if base else None, max_network_retries=NETWORK_RETRIES
        )
    return clients[base]


from shop.payments import cli, routes, webhook  # noqa: E402,F401  (they attach to bp)
