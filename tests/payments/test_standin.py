"""The local Stripe stand-in answers the official stripe library over HTTP as Stripe would:
keys checked (live ones refused), idempotent POSTs, Stripe's bounds on expires_at, Stripe's error shape."""

import time

import pytest
import requests
import stripe


@pytest.fixture
def stripe_api(app, stripe_standin):
    return stripe.StripeClient(app.config["STRIPE_SECRET_KEY"], base_addresses={"api": f"{stripe_standin}/dev-stripe"})


def session_params(**overrides):
    return {
        "mode": "payment",
        "client_reference_id": "7",
        "line_items": [
            {"quantity": 2, "price_data": {"currency": "eur", "unit_amount": 500, "product_data": {"name": "Mug"}}}
        ],
        "expires_at": int(time.time()) + 31 * 60,
        "success_url": "http://127.0.0.1/ok?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1/back",
        **overrides,
    }


def test_keys_are_checked_and_live_keys_refused(stripe_standin):
    for key, message in (("sk_test_wrong", "Invalid API Key"), ("sk_live_real", "refuses live keys")):
        api = stripe.StripeClient(key, base_addresses={"api": f"{stripe_standin}/dev-stripe"}, max_network_retries=0)
        with pytest.raises(stripe.AuthenticationError) as error:
            api.v1.checkout.sessions.retrieve("cs_test_x")
        assert message in error.value.user_message


def test_the_same_idempotency_key_returns_the_same_session(stripe_api):
    first = stripe_api.v1.checkout.sessions.create(session_params(), options={"idempotency_key": "k-1"})
    again = stripe_api.v1.checkout.sessions.create(session_params(), options={"idempotency_key": "k-1"})
    other = stripe_api.v1.checkout.sessions.create(session_params(), options={"idempotency_key": "k-2"})
    assert first.id == again.id != other.id
    assert (first.object, first.status, first.payment_status, first.amount_total) == (
        "checkout.session",
        "open",
        "unpaid",
        1000,
    )


@pytest.mark.parametrize("minutes", [10, 25 * 60])
def test_expires_at_outside_stripes_bounds_is_refused(stripe_api, minutes):
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe_api.v1.checkout.sessions.create(session_params(expires_at=int(time.time()) + minutes * 60))
    assert error.value.param == "expires_at"


def test_unknown_objects_are_404_in_stripes_shape(stripe_api, stripe_standin):
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe_api.v1.checkout.sessions.retrieve("cs_test_nothing")
    assert error.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_api.v1.refunds.create({"payment_intent": "pi_test_nothing"})
    assert requests.get(f"{stripe_standin}/dev-stripe/checkout/cs_test_nothing", timeout=10).status_code == 404


def test_an_expired_session_cannot_be_expired_again(stripe_api):
    session = stripe_api.v1.checkout.sessions.create(session_params())
    assert stripe_api.v1.checkout.sessions.expire(session.id).status == "expired"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_api.v1.checkout.sessions.expire(session.id)


def test_the_standin_is_off_with_a_real_key(make_app):
    app = make_app(STRIPE_SECRET_KEY="sk_test_real")
    assert app.test_client().get("/dev-stripe/checkout/cs_test_x").status_code == 404
    assert b"Local Stripe stand-in" not in app.test_client().get("/sign-in").data
