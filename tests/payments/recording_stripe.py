"""A Stripe API of the suite's own, not the shop's stand-in: it answers the calls the shop makes
(Checkout Sessions, their expiry, refunds) with Stripe-shaped objects, keeps idempotency keys as
Stripe does (the same key replays the first answer), and records every refund it was asked for.

Unlike Stripe, it refunds whatever it is asked to, however much was charged: so a test can see a
double refund the shop asked for, which real Stripe would have hidden by refusing it. It sends no
events: the test plays Stripe's webhooks itself, in whatever order it wants.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, jsonify, request

from tests.support import live_server


@dataclass
class Refund:
    id: str
    payment_intent: str
    amount: int
    idempotency_key: str | None
    order_id: str | None


@dataclass
class RecordingStripe:
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    charged: dict[str, int] = field(default_factory=dict)  # payment intent -> amount captured
    refunds: list[Refund] = field(default_factory=list)
    replies: dict[str, tuple[Any, int]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # --- what the test does as Stripe --------------------------------------------------------------------

    def complete(self, session_id: str, *, amount_subtotal: int | None = None, currency: str | None = None) -> dict:
        """The shopper paid on Stripe's page (by default exactly what the session asked)."""
        with self.lock:
            session = self.sessions[session_id]
            intent = f"pi_rec_{next(self.ids)}"
            if amount_subtotal is not None:
                session["amount_subtotal"] = session["amount_total"] = amount_subtotal
            if currency is not None:
                session["currency"] = currency
            session.update(status="complete", payment_status="paid", payment_intent=intent)
            self.charged[intent] = session["amount_total"]
            return dict(session)

    def expire(self, session_id: str) -> dict | None:
        """Stripe expires an open session at its expires_at; None if it was not open."""
        with self.lock:
            session = self.sessions[session_id]
            if session["status"] != "open":
                return None
            session["status"] = "expired"
            return dict(session)

    def refunded_of(self, intent: str) -> int:
        return sum(refund.amount for refund in self.refunds if refund.payment_intent == intent)

    # --- the API the shop's `stripe` library calls -------------------------------------------------------

    def wsgi(self) -> Flask:
        app = Flask("recording-stripe")

        def idempotent(answer):
            key = request.headers.get("Idempotency-Key")
            with self.lock:
                if key is not None and key in self.replies:
                    body, status = self.replies[key]
                    return jsonify(body), status
                body, status = answer()
                if key is not None:
                    self.replies[key] = (body, status)
                return jsonify(body), status

        @app.post("/v1/checkout/sessions")
        def create_session():
            def answer():
                form = request.form
                total, lines = 0, itertools.count()
                while f"line_items[{(n := next(lines))}][quantity]" in form:
                    quantity = int(form[f"line_items[{n}][quantity]"])
                    total += quantity * int(form[f"line_items[{n}][price_data][unit_amount]"])
                session_id = f"cs_rec_{next(self.ids)}"
                session = {
                    "id": session_id,
                    "object": "checkout.session",
                    "amount_subtotal": total,
                    "amount_total": total,
                    "client_reference_id": form.get("client_reference_id"),
                    "currency": form["line_items[0][price_data][currency]"],
                    "expires_at": int(form.get("expires_at") or time.time() + 1800),
                    "metadata": {
                        key.removeprefix("metadata[").removesuffix("]"): value
                        for key, value in form.items()
                        if key.startswith("metadata[")
                    },
                    "mode": "payment",
                    "payment_intent": None,
                    "payment_status": "unpaid",
                    "status": "open",
                    "url": f"https://checkout.stripe.test/{session_id}",
                }
                self.sessions[session_id] = session
                return session, 200

            return idempotent(answer)

        @app.get("/v1/checkout/sessions/<session_id>")
        def retrieve_session(session_id: str):
            with self.lock:
                if session_id not in self.sessions:
                    return _error(404, "No such checkout.session")
                return jsonify(self.sessions[session_id])

        @app.post("/v1/checkout/sessions/<session_id>/expire")
        def expire_session(session_id: str):
            def answer():
                session = self.sessions.get(session_id)
                if session is None or session["status"] != "open":
                    return {"error": {"type": "invalid_request_error", "message": "Only open sessions."}}, 400
                session["status"] = "expired"
                return session, 200

            return idempotent(answer)

        @app.post("/v1/refunds")
        def create_refund():
            def answer():
                intent = request.form.get("payment_intent", "")
                if intent not in self.charged:
                    return {"error": {"type": "invalid_request_error", "message": "No such payment_intent"}}, 404
                left = self.charged[intent] - self.refunded_of(intent)
                amount = int(request.form.get("amount") or max(left, 0))
                refund = Refund(
                    f"re_rec_{next(self.ids)}",
                    intent,
                    amount,
                    request.headers.get("Idempotency-Key"),
                    request.form.get("metadata[order_id]"),
                )
                self.refunds.append(refund)
                body = {
                    "id": refund.id,
                    "object": "refund",
                    "amount": amount,
                    "currency": "eur",
                    "payment_intent": intent,
                    "status": "succeeded",
                    "metadata": {"order_id": refund.order_id},
                }
                return body, 200

            return idempotent(answer)

        return app


def _error(status: int, message: str):
    return jsonify({"error": {"type": "invalid_request_error", "message": message}}), status


@contextmanager
def recording_stripe(app) -> Iterator[RecordingStripe]:
    """A RecordingStripe on a real HTTP server, the API the app's `stripe` library calls meanwhile."""
    stripe = RecordingStripe()
    with live_server(stripe.wsgi()) as url:
        previous = app.config["STRIPE_API_BASE"]
        app.config["STRIPE_API_BASE"] = url
        app.extensions.pop("stripe_clients", None)
        try:
            yield stripe
        finally:
            app.config["STRIPE_API_BASE"] = previous
            app.extensions.pop("stripe_clients", None)
