"""The stand-in's HTTP face: Stripe's API under `/dev-stripe/v1/…`, the hosted-checkout page, and
signed event delivery to `/api/webhooks/stripe`."""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from typing import Any

import requests
import stripe
from flask import current_app, jsonify, redirect, render_template, request

from devtools.stripe_standin import bp
from devtools.stripe_standin.store import ObjectStore
from shop.extensions import csrf

log = logging.getLogger(__name__)

MIN_LIFETIME, MAX_LIFETIME = 30 * 60, 24 * 60 * 60  # Stripe's bounds on a session's expires_at
DELIVERY_ATTEMPTS = 5


def store() -> ObjectStore:
    return ObjectStore(current_app.config["SHOP_DEV_STRIPE_DIR"])


def _id(prefix: str) -> str:
    return f"{prefix}_test_standin{secrets.token_hex(12)}"


def _error(status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None, **extra: Any):
    return jsonify(error={"type": kind, "message": message, "code": code, **extra}), status


class MalformedForm(ValueError):
    """Two keys that cannot both hold (`a[b]=1` and `a[b][c]=2`): Stripe answers 400."""


def decode_form(items: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`line_items[0][price_data][currency]=eur`) back into nested values;
    MalformedForm when two keys clash."""
    root: dict[str, Any] = {}
    for key, value in items:
        parts = re.findall(r"[^\[\]]+", key)
        if not parts:
            continue
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise MalformedForm(key)
        if isinstance(node.get(parts[-1]), dict):
            raise MalformedForm(key)
        node[parts[-1]] = value

    def listify(value: Any) -> Any:
        if isinstance(value, dict):
            value = {k: listify(v) for k, v in value.items()}
            if value and all(k.isdigit() for k in value):
                return [value[k] for k in sorted(value, key=int)]
        return value

    return listify(root)


@bp.errorhandler(MalformedForm)
def malformed_form(exc: MalformedForm):
    return _error(
        400, f"Invalid parameters: the key {str(exc)[:100]!r} clashes with another.", code="parameter_invalid"
    )


@bp.before_request
def check_key():
    if not request.path.startswith("/dev-stripe/v1/"):
        return None
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if given.startswith(("sk_live_", "rk_live_")):
        return _error(401, "The local Stripe stand-in refuses live keys.", code="api_key_expired")
    if not secrets.compare_digest(given, current_app.config["STRIPE_SECRET_KEY"]):
        return _error(401, "Invalid API Key provided.", code="invalid_api_key")
    return None


def idempotent(view):
    """Replay the first answer to a POST that repeats its Idempotency-Key, as Stripe does."""

    def wrapped(*args: Any, **kwargs: Any):
        key = request.headers.get("Idempotency-Key")
        if not key:
            return view(*args, **kwargs)
        key = f"{request.path}:{key}"
        with store().locked() as objects:
            replay = objects.reply_for(key)
            if replay is not None:
                status, body = replay
                response = jsonify(body)
                response.status_code = status
                response.headers["Idempotent-Replayed"] = "true"
                return response
            response, status = view(*args, **kwargs)
            if status < 500:
                objects.remember_reply(key, status, response.get_json())
            return response, status

    wrapped.__name__ = view.__name__
    return wrapped


# --- Checkout Sessions ---------------------------------------------------------------------------------


def _line_total(item: dict[str, Any]) -> int:
    return int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1))


# --- Customers (Stripe Tax takes the shopper's location from the Customer's shipping address) -------------


def _customer_of(params: dict[str, Any], customer_id: str | None = None) -> dict[str, Any]:
    shipping = params.get("shipping")
    if shipping is not None and not (
        isinstance(shipping, dict) and isinstance(shipping.get("address"), dict) and shipping.get("name")
    ):
        raise ValueError("shipping needs a name and an address")
    return {
        "id": customer_id or _id("cus"),
        "object": "customer",
        "address": None,
        "created": int(time.time()),
        "email": params.get("email"),
        "livemode": False,
        "metadata": params.get("metadata") or {},
        "name": params.get("name"),
        "shipping": (
            {"name": shipping["name"], "phone": None, "address": {**EMPTY_ADDRESS, **shipping["address"]}}
            if shipping
            else None
        ),
    }


EMPTY_ADDRESS = {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


@bp.post("/v1/customers")
@csrf.exempt
@idempotent
def create_customer():
    try:
        customer = _customer_of(decode_form(list(request.form.items(multi=True))))
    except ValueError:
        return _error(400, "Invalid shipping: it needs a name and an address.", param="shipping")
    store().put(customer)
    return jsonify(public(customer)), 200


@bp.get("/v1/customers/<customer_id>")
def retrieve_customer(customer_id: str):
    customer = store().get(customer_id)
    if customer is None or customer.get("object") != "customer":
        return _error(404, f"No such customer: '{customer_id[:100]}'", code="resource_missing", param="id")
    return jsonify(public(customer)), 200


@bp.post("/v1/customers/<customer_id>")
@csrf.exempt
@idempotent
def update_customer(customer_id: str):
    params = decode_form(list(request.form.items(multi=True)))
    with store().locked() as objects:
        customer = objects.get(customer_id)
        if customer is None or customer.get("object") != "customer":
            return _error(404, f"No such customer: '{customer_id[:100]}'", code="resource_missing", param="id")
        try:
            changed = _customer_of({**public(customer), **params}, customer_id)
        except ValueError:
            return _error(400, "Invalid shipping: it needs a name and an address.", param="shipping")
        customer.update(changed, created=customer["created"])
        objects.put(customer)
    return jsonify(public(customer)), 200


# --- what a session charges: shipping, the demo promotion code, a simple automatic tax ------------------

# The one promotion code the stand-in knows (Stripe's are made in its dashboard): 10% off the subtotal.
DEMO_CODE, DEMO_PERCENT_OFF = "DEMO10", 10
DEMO_PROMOTION_CODE_ID = "promo_test_standinDEMO10"
DEMO_COUPON_ID = "standin_demo10"
# Stripe Tax, as far as the stand-in plays it: one rate by the Customer's shipping country (no
# registration, no product tax codes, shipping taxed like the goods). Another country: no tax.
TAX_PERCENT = {"AT": 20, "BE": 21, "DE": 19, "ES": 21, "FR": 20, "GB": 20, "IE": 23, "IT": 22, "NL": 21, "PT": 23}


def _tax(amount: int, percent: int, behavior: str) -> int:
    """The tax in `amount`: added on top (exclusive), or the part of it that is tax (inclusive)."""
    if behavior == "inclusive":
        return amount - round(amount * 100 / (100 + percent))
    return round(amount * percent / 100)


def _charge(session: dict[str, Any]) -> None:
    """Set the session's amounts from its lines, shipping, discount and tax, as Stripe states them:
    amount_total = amount_subtotal - amount_discount + shipping + tax (exclusive tax only: inclusive tax
    is already in the prices)."""
    subtotal = sum(line["amount"] for line in session["_line_items"])
    percent_off = session.get("_percent_off") or 0
    discount = round(subtotal * percent_off / 100)
    rate = session.get("_shipping_rate")
    shipping = rate["fixed_amount"]["amount"] if rate else 0
    automatic = session["automatic_tax"]["enabled"]
    percent = TAX_PERCENT.get(session.get("_tax_country") or "", 0) if automatic else 0
    behavior = session.get("_tax_behavior") or "exclusive"
    shipping_behavior = (rate or {}).get("tax_behavior") or behavior
    items_tax = _tax(subtotal - discount, percent, behavior)
    shipping_tax = _tax(shipping, percent, shipping_behavior)
    added = (items_tax if behavior == "exclusive" else 0) + (shipping_tax if shipping_behavior == "exclusive" else 0)
    session["amount_subtotal"] = subtotal
    session["amount_total"] = subtotal - discount + shipping + added
    session["total_details"] = {
        "amount_discount": discount,
        "amount_shipping": shipping,
        "amount_tax": items_tax + shipping_tax,
    }
    if rate:
        shipping_added = shipping_tax if shipping_behavior == "exclusive" else 0
        session["shipping_cost"] = {
            "amount_subtotal": shipping,
            "amount_tax": shipping_tax,
            "amount_total": shipping + shipping_added,
            "shipping_rate": rate["id"],
        }
        session["shipping_options"] = [{"shipping_amount": shipping, "shipping_rate": rate["id"]}]
    session["discounts"] = [{"coupon": DEMO_COUPON_ID, "promotion_code": DEMO_PROMOTION_CODE_ID}] if discount else []
    if automatic:
        session["automatic_tax"]["status"] = "complete"


def _shipping_rate(options: Any, currency: str) -> dict[str, Any] | None:
    """The session's shipping rate: the first inline `shipping_rate_data` (the shop sends the one the
    shopper chose; Stripe would let the shopper pick among several). ValueError when malformed."""
    if options in (None, ""):
        return None
    if not isinstance(options, list) or not options or len(options) > 5:
        raise ValueError("shipping_options takes 1 to 5 options")
    data = options[0].get("shipping_rate_data") if isinstance(options[0], dict) else None
    if not isinstance(data, dict) or data.get("type", "fixed_amount") != "fixed_amount":
        raise ValueError("the stand-in takes inline shipping_rate_data of type fixed_amount")
    amount = int(data["fixed_amount"]["amount"])
    if amount < 0 or data["fixed_amount"]["currency"] != currency or not data.get("display_name"):
        raise ValueError("shipping_rate_data needs a display_name and a fixed_amount in the session's currency")
    return {
        "id": _id("shr"),
        "object": "shipping_rate",
        "active": True,
        "display_name": data["display_name"],
        "fixed_amount": {"amount": amount, "currency": currency},
        "livemode": False,
        "metadata": {},
        "tax_behavior": data.get("tax_behavior") or "unspecified",
        "type": "fixed_amount",
    }


@bp.post("/v1/checkout/sessions")
@csrf.exempt
@idempotent
def create_session():
    try:
        params = decode_form(list(request.form.items(multi=True)))
        items = params.get("line_items") or []
        if params.get("mode") != "payment":
            return _error(400, "This stand-in only supports mode=payment.", code="parameter_invalid_string")
        if not isinstance(items, list) or not items:
            return _error(400, "line_items is required in payment mode.", code="parameter_missing")
        currencies = {item["price_data"]["currency"] for item in items}
        behaviors = {item["price_data"].get("tax_behavior") or "exclusive" for item in items}
        total = sum(_line_total(item) for item in items)
        names = [item["price_data"]["product_data"]["name"] for item in items]
        expires_at = int(params.get("expires_at") or time.time() + MAX_LIFETIME)
    except (KeyError, TypeError, ValueError, AttributeError):
        return _error(400, "Invalid line_items: each needs price_data (currency, unit_amount, product_data.name).")
    shipping_rate = None
    if len(currencies) == 1:
        try:
            shipping_rate = _shipping_rate(params.get("shipping_options"), next(iter(currencies)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return _error(400, f"Invalid shipping_options: {exc}.", param="shipping_options")
    if len(behaviors) != 1 or not behaviors <= {"exclusive", "inclusive"}:
        return _error(400, "Every line's tax_behavior must be the same: exclusive or inclusive.")
    automatic_tax = str((params.get("automatic_tax") or {}).get("enabled", "false")).lower() == "true"
    customer_id = params.get("customer") or None
    customer = store().get(customer_id) if customer_id else None
    if customer_id and (customer is None or customer.get("object") != "customer"):
        return _error(404, f"No such customer: '{str(customer_id)[:100]}'", code="resource_missing", param="customer")
    if customer_id and params.get("customer_email"):
        return _error(400, "You may only specify one of these parameters: customer, customer_email.")
    tax_country = ((customer or {}).get("shipping") or {}).get("address", {}).get("country")
    if automatic_tax and not tax_country:
        return _error(
            400,
            "Automatic tax calculation in Checkout requires a valid address on the Customer. Add a valid address "
            "to the Customer or set either `customer_update[address]` to 'auto' or `customer_update[shipping]` to "
            "'auto' to save the address entered in Checkout to the Customer.",
            code="customer_tax_location_invalid",
        )
    now = int(time.time())
    if not now + MIN_LIFETIME - 5 <= expires_at <= now + MAX_LIFETIME:
        return _error(
            400, "The `expires_at` timestamp must be between 30 minutes and 24 hours from now.", param="expires_at"
        )
    if len(currencies) != 1 or not params.get("success_url"):
        return _error(400, "One currency and a success_url are required.", code="parameter_missing")
    session_id = _id("cs")
    session = {
        "id": session_id,
        "object": "checkout.session",
        "amount_subtotal": total,
        "amount_total": total,
        "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"),
        "created": now,
        "currency": currencies.pop(),
        "allow_promotion_codes": str(params.get("allow_promotion_codes", "false")).lower() == "true",
        "automatic_tax": {"enabled": automatic_tax, "liability": None, "provider": None, "status": None},
        "customer": customer_id,
        "customer_details": None,
        "customer_email": params.get("customer_email") or (customer or {}).get("email"),
        "discounts": [],
        "shipping_cost": None,
        "shipping_options": [],
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "expires_at": expires_at,
        "livemode": False,
        "metadata": params.get("metadata") or {},
        "mode": "payment",
        "payment_intent": None,
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "status": "open",
        "success_url": params["success_url"],
        "url": f"{request.host_url}dev-stripe/checkout/{session_id}",
        # What Stripe keeps to itself: the line items (expandable) and where the events go.
        "_line_items": [
            {"name": n, "quantity": int(i.get("quantity", 1)), "amount": _line_total(i)}
            for n, i in zip(names, items, strict=True)
        ],
        "_payment_intent_metadata": (params.get("payment_intent_data") or {}).get("metadata") or {},
        "_webhook_url": f"{request.host_url}api/webhooks/stripe",
        "_shipping_rate": shipping_rate,
        "_percent_off": 0,
        "_tax_behavior": behaviors.pop(),
        "_tax_country": tax_country,
        "_customer_shipping": (customer or {}).get("shipping"),
    }
    _charge(session)
    if shipping_rate:
        store().put(shipping_rate)
    store().put(session)
    return jsonify(public(session)), 200


def public(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if not key.startswith("_")}


def _session_or_404(session_id: str) -> dict[str, Any] | None:
    session = store().get(session_id)
    return session if session and session.get("object") == "checkout.session" else None


def _expire_if_due(session: dict[str, Any]) -> dict[str, Any]:
    """Stripe expires an open session at expires_at by itself; the stand-in does it when looked at."""
    if session["status"] == "open" and session["expires_at"] <= time.time():
        with store().locked() as objects:
            current = objects.get(session["id"])
            assert current is not None, "the stand-in never deletes an object"
            session = current
            if session["status"] == "open":
                session = _expire(objects, session)
    return session


@bp.get("/v1/checkout/sessions/<session_id>")
def retrieve_session(session_id: str):
    session = _session_or_404(session_id)
    if session is None:
        return _error(404, f"No such checkout.session: '{session_id}'", code="resource_missing")
    return jsonify(public(_expire_if_due(session))), 200


@bp.post("/v1/checkout/sessions/<session_id>/expire")
@csrf.exempt
@idempotent
def expire_session(session_id: str):
    with store().locked() as objects:
        session = objects.get(session_id)
        if session is None or session.get("object") != "checkout.session":
            return _error(404, f"No such checkout.session: '{session_id}'", code="resource_missing")
        if session["status"] != "open":
            return _error(
                400,
                f'Only Checkout Sessions with a status in ["open"] can be expired; this one is {session["status"]}.',
            )
        session = _expire(objects, session)
    return jsonify(public(session)), 200


def _expire(objects: ObjectStore, session: dict[str, Any]) -> dict[str, Any]:
    session["status"] = "expired"
    session["url"] = None
    objects.put(session)
    deliver(session["_webhook_url"], [("checkout.session.expired", public(session))])
    return session


@bp.get("/v1/payment_intents/<intent_id>")
def retrieve_payment_intent(intent_id: str):
    """Read when a session is complete but unpaid: `processing` while the money is on its way,
    `requires_payment_method` once that payment failed (Stripe's own states)."""
    intent = store().get(intent_id)
    if intent is None or intent.get("object") != "payment_intent":
        return _error(404, f"No such payment_intent: '{intent_id[:100]}'", code="resource_missing")
    return jsonify(public(intent)), 200


# Stripe's test card whose refunds are accepted, then fail: refund.created and charge.refunded, later refund.failed.
REFUNDS_FAIL_CARD = "5126"


def _complete(
    objects: ObjectStore, session: dict[str, Any], *, paid: bool, last4: str = "4242"
) -> list[tuple[str, dict[str, Any]]]:
    """The shopper paid (or chose a method that settles later): the PaymentIntent, the charge, the events."""
    now = int(time.time())
    intent_id, charge_id = _id("pi"), _id("ch")
    metadata = session["_payment_intent_metadata"]
    objects.put(
        {
            "id": intent_id,
            "object": "payment_intent",
            "amount": session["amount_total"],
            "amount_received": session["amount_total"] if paid else 0,
            "currency": session["currency"],
            "created": now,
            "latest_charge": charge_id if paid else None,
            "livemode": False,
            "metadata": metadata,
            "status": "succeeded" if paid else "processing",
            "_webhook_url": session["_webhook_url"],
        }
    )
    if paid:
        objects.put(
            {
                "id": charge_id,
                "object": "charge",
                "amount": session["amount_total"],
                "amount_captured": session["amount_total"],
                "amount_refunded": 0,
                "captured": True,
                "created": now,
                "currency": session["currency"],
                "livemode": False,
                "metadata": metadata,
                "paid": True,
                "payment_intent": intent_id,
                "payment_method_details": {
                    "card": {"brand": "visa", "last4": last4, "exp_month": 12, "exp_year": 2034},
                    "type": "card",
                },
                "refunded": False,
                "status": "succeeded",
            }
        )
    session.update(
        status="complete",
        payment_status="paid" if paid else "unpaid",
        payment_intent=intent_id,
        url=None,
        customer_details={
            "email": session["customer_email"],
            "name": (session.get("_customer_shipping") or {}).get("name"),
            "address": (session.get("_customer_shipping") or {}).get("address"),
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
    )
    objects.put(session)
    return [("checkout.session.completed", public(session))]


# --- Refunds --------------------------------------------------------------------------------------------


@bp.post("/v1/refunds")
@csrf.exempt
@idempotent
def create_refund():
    params = decode_form(list(request.form.items(multi=True)))
    with store().locked() as objects:
        intent = objects.get(params.get("payment_intent") or "")
        if intent is None or intent.get("object") != "payment_intent":
            return _error(404, f"No such payment_intent: '{params.get('payment_intent')}'", code="resource_missing")
        charge = objects.get(intent.get("latest_charge") or "")
        if intent["status"] != "succeeded" or charge is None:
            return _error(400, "This PaymentIntent has no successful charge to refund.", code="charge_not_refundable")
        if charge["refunded"]:
            return _error(400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        left = charge["amount"] - charge["amount_refunded"]
        amount = params.get("amount")
        amount = int(amount) if isinstance(amount, str) and amount.isascii() and amount.isdigit() else left
        if not 0 < amount <= left:  # Stripe's own words for a refund larger than what is left of the charge
            return _error(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                code="amount_too_large",
            )
        refund = {
            "id": _id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "created": int(time.time()),
            "currency": charge["currency"],
            "metadata": params.get("metadata") or {},
            "payment_intent": intent["id"],
            "reason": params.get("reason"),
            "status": "succeeded",
        }
        objects.put(refund)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        objects.put(charge)
        events = [("refund.created", dict(refund)), ("charge.refunded", dict(charge))]
        if charge["payment_method_details"]["card"]["last4"] == REFUNDS_FAIL_CARD:
            # The card's bank sends the money back: the refund fails and the charge is as before it.
            refund.update(status="failed", failure_reason="expired_or_canceled_card")
            charge["amount_refunded"] -= amount
            charge["refunded"] = False
            objects.put(refund)
            objects.put(charge)
            events.append(("refund.failed", refund))
    deliver(intent["_webhook_url"], events)
    return jsonify(events[0][1]), 200


# --- the hosted-checkout page ----------------------------------------------------------------------------


@bp.get("/checkout/<session_id>")
def checkout_page(session_id: str):
    session = _session_or_404(session_id)
    if session is None:
        return render_template("stripe_standin/checkout.html", session=None), 404
    return render_template("stripe_standin/checkout.html", session=_expire_if_due(session))


@bp.post("/checkout/<session_id>")
def checkout_submit(session_id: str):
    action = request.form.get("action")
    with store().locked() as objects:
        session = objects.get(session_id)
        if session is None or session.get("object") != "checkout.session":
            return render_template("stripe_standin/checkout.html", session=None), 404
        actions = ("pay", "pay_refunds_fail", "pay_then_fail", "expire", "apply_code")
        if session["status"] != "open" or action not in actions:
            return render_template("stripe_standin/checkout.html", session=session), 409
        if action == "apply_code":
            if not session.get("allow_promotion_codes"):
                return render_template("stripe_standin/checkout.html", session=session), 409
            code = (request.form.get("promotion_code") or "").strip().upper()
            if code != DEMO_CODE:  # Stripe's own words on its page
                return render_template("stripe_standin/checkout.html", session=session, code_error=True), 400
            session["_percent_off"] = DEMO_PERCENT_OFF
            _charge(session)
            objects.put(session)
            return redirect(f"/dev-stripe/checkout/{session_id}", code=303)
        if action == "expire":
            _expire(objects, session)
            return redirect(session["cancel_url"] or "/", code=303)
        last4 = REFUNDS_FAIL_CARD if action == "pay_refunds_fail" else "4242"
        events = _complete(objects, session, paid=action in ("pay", "pay_refunds_fail"), last4=last4)
        if action == "pay_then_fail":
            intent = objects.get(session["payment_intent"])
            assert intent is not None, "_complete has just stored the session's payment intent"
            intent["status"] = "requires_payment_method"
            objects.put(intent)
            events.append(("checkout.session.async_payment_failed", public(session)))
    deliver(session["_webhook_url"], events)
    return redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id), code=303)


# --- events ---------------------------------------------------------------------------------------------


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _id("evt"),
        "object": "event",
        "api_version": stripe.api_version,
        "created": int(time.time()),
        "data": {"object": public(obj)},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def deliver(url: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    """POST the events in order, signed as Stripe signs them, off the request thread; retry a little."""
    secret = current_app.config["STRIPE_WEBHOOK_SECRETS"][0]
    bodies = [json.dumps(event(kind, obj)) for kind, obj in events]

    def send() -> None:
        for body in bodies:
            for attempt in range(DELIVERY_ATTEMPTS):
                headers = {
                    "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(body, secret),
                    "Content-Type": "application/json; charset=utf-8",
                }
                try:
                    if requests.post(url, data=body.encode(), headers=headers, timeout=10).ok:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.5 * (attempt + 1))
            else:
                log.warning("stripe stand-in: event not delivered to %s", url)

    threading.Thread(target=send, name="stripe-standin-events", daemon=True).start()
