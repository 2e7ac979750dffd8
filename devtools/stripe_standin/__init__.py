"""The local Stripe stand-in (development and tests only; never with a live key).

So that checkout runs on a laptop with no Stripe account and no tunnel, and the browser tests can
pay, this package plays Stripe's part over real HTTP under `/dev-stripe`: the official `stripe`
library is pointed at it (StripeClient's api base) and calls it like api.stripe.com. It answers
the calls this shop makes (create, retrieve and expire a Checkout Session, with its one shipping rate,
promotion codes and automatic tax; create and read a Customer; retrieve a PaymentIntent; create a refund)
with objects shaped like those in Stripe's published OpenAPI fixtures, serves a hosted-checkout page
(pay, pay with a method that then fails, let the session expire, enter the demo code DEMO10), and
delivers events signed with
Stripe's scheme (`Stripe-Signature: t=…,v1=…`) to the app's own `/api/webhooks/stripe`, off the
request thread, as Stripe does.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Blueprint, Flask

from shop.generated_secrets import generated_once

bp = Blueprint("stripe_standin", __name__, url_prefix="/dev-stripe", template_folder="templates")


def configure(app: Flask) -> None:
    """Give the app a test key and a webhook secret of the stand-in's own, and mount it."""
    folder = Path(app.config["SHOP_DEV_STRIPE_DIR"] or Path(app.instance_path) / "dev-stripe")
    folder.mkdir(parents=True, exist_ok=True)
    app.config["SHOP_DEV_STRIPE_DIR"] = folder
    if not app.config["STRIPE_SECRET_KEY"]:
        app.config["STRIPE_SECRET_KEY"] = generated_once(
            folder / "secret-key", lambda: f"sk_test_standin{secrets.token_hex(16)}"
        )
    if not app.config["STRIPE_WEBHOOK_SECRETS"]:
        app.config["STRIPE_WEBHOOK_SECRETS"] = [
            generated_once(folder / "webhook-secret", lambda: "whsec_" + secrets.token_hex(24))
        ]
    app.register_blueprint(bp)


from devtools.stripe_standin import routes  # noqa: E402,F401
