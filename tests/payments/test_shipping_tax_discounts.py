"""Selling for real through Stripe Checkout (issue 22 items 1-3 and 7), the `stripe` library against the local
stand-in over HTTP: shipping rates offered and chosen at checkout (free above a total, inactive or forged
rates refused with a sentence), the session asking for the chosen rate, Stripe Tax on and off (one Customer
per order with the order's shipping address), promotion codes on and off, and the stand-in's totals adding up."""

import re

import pytest
import requests

from shop.config import ConfigError, load
from shop.extensions import db
from shop.payments import client as stripe_client
from shop.store.models import Order, ShippingRate
from shop.store.shipping import CHOOSE_ONE, NOT_OFFERED
from tests.store.conftest import checkout_fields, csrf_token_from, latest_order_id, on_standin_page


@pytest.fixture
def app(make_app, request):
    """The app, with the settings a test's `indirect` parameter names."""
    return make_app(**getattr(request, "param", {}))


@pytest.fixture
def rates(app):
    """Standard €4.90 (free from €50), Express €9.90, an inactive one, and one in dollars: their ids."""
    made = {
        "standard": ShippingRate(name="Standard", price_cents=490, currency="EUR", free_above_cents=5000),
        "express": ShippingRate(name="Express", price_cents=990, currency="EUR", delivery_estimate="next day"),
        "retired": ShippingRate(name="Pigeon", price_cents=100, currency="EUR", active=False),
        "dollars": ShippingRate(name="Overseas", price_cents=2000, currency="USD"),
    }
    with app.app_context():
        db.session.add_all(made.values())
        db.session.commit()
        return {key: rate.id for key, rate in made.items()}


def text(response) -> str:
    return response.get_data(as_text=True)


def shopper_with(client, sign_in, make_product, post_form, *, price_cents: int, quantity: int = 1, who="user_ships"):
    product_id = make_product("mug", stock=10, price_cents=price_cents)
    sign_in(who, email=f"{who}@example.com")
    post_form("/cart/add", {"slug": "mug", "quantity": str(quantity)})
    return product_id


def session_of(app, order_id: int) -> dict:
    with app.app_context():
        order = db.session.get_one(Order, order_id)
        session_id = order.stripe_checkout_session_id
        db.session.rollback()
    with app.test_request_context():
        return stripe_client().v1.checkout.sessions.retrieve(session_id).to_dict()


def order_row(app, order_id: int) -> Order:
    with app.app_context():
        order = db.session.get_one(Order, order_id)
        db.session.expunge(order)
        return order


def place(app, client, clerk_id: str, **fields: str) -> tuple[str, int]:
    response = client.post("/checkout", data=checkout_fields(client, **fields))
    assert response.status_code == 303, text(response)
    order_id = latest_order_id(app, clerk_id)
    assert order_id is not None
    return response.headers["Location"], order_id


def test_checkout_offers_the_active_rates_in_the_carts_currency_free_above_their_total(
    app, client, sign_in, make_product, post_form, rates
):
    shopper_with(client, sign_in, make_product, post_form, price_cents=2000)
    page = text(client.get("/checkout"))
    offered = re.findall(r'name="shipping_rate_id" value="(\d+)"', page)
    assert offered == [str(rates["standard"]), str(rates["express"])]  # cheapest first, checked
    assert "Standard: €4.90" in page and "Express: €9.90" in page and "next day" in page
    assert "Pigeon" not in page and "Overseas" not in page
    assert re.search(rf'value="{rates["standard"]}" checked', page)
    post_form("/cart/add", {"slug": "mug", "quantity": "2"})  # €60.00: Standard ships free from €50
    assert "Standard: free" in text(client.get("/checkout"))


def test_the_chosen_rate_is_copied_onto_the_order_and_asked_of_stripe_as_the_one_shipping_option(
    app, client, sign_in, make_product, post_form, rates, stripe_standin
):
    shopper_with(client, sign_in, make_product, post_form, price_cents=1500, quantity=2)
    _, order_id = place(app, client, "user_ships", shipping_rate_id=str(rates["express"]))
    order = order_row(app, order_id)
    assert (order.shipping_rate_id, order.shipping_rate_name, order.shipping_cents) == (
        rates["express"],
        "Express",
        990,
    )
    assert order.total_cents == 3000 + 990  # the lines and the shipping the order asks for
    session = session_of(app, order_id)
    assert session["amount_subtotal"] == 3000  # the lines alone, as the money rule compares them
    assert session["shipping_cost"]["amount_subtotal"] == session["total_details"]["amount_shipping"] == 990
    assert session["shipping_options"] == [
        {"shipping_amount": 990, "shipping_rate": session["shipping_cost"]["shipping_rate"]}
    ]
    assert session["amount_total"] == 3990 and session["total_details"]["amount_tax"] == 0
    # Tax and promotion codes are off by default: Stripe is asked for neither, and the e-mail goes as before.
    assert session["automatic_tax"]["enabled"] is False and session["allow_promotion_codes"] is False
    assert session["customer"] is None and session["customer_email"] == "user_ships@example.com"
    # The order's page, before any payment: the lines, the chosen shipping, and the total that includes it.
    page = re.sub(r"\s+", " ", text(client.get(f"/orders/{order_id}")))
    assert re.search(
        r"Shipping: Express</th><td class=\"num\">€9.90</td>.*Total</th><td class=\"num\"><strong>€39.90", page
    )


def test_a_free_rate_costs_nothing_and_a_shop_without_rates_asks_for_none(
    app, client, sign_in, make_product, post_form, stripe_standin
):
    shopper_with(client, sign_in, make_product, post_form, price_cents=3000, quantity=2)
    assert "shipping_rate_id" not in text(client.get("/checkout"))  # no rates: nothing to choose
    _, order_id = place(app, client, "user_ships")
    order = order_row(app, order_id)
    assert (order.shipping_rate_name, order.shipping_cents, order.total_cents) == (None, 0, 6000)
    assert session_of(app, order_id)["shipping_cost"] is None


def test_a_forged_inactive_or_missing_rate_is_refused_with_a_sentence_and_nothing_is_placed(
    app, client, sign_in, make_product, post_form, rates, stripe_standin, stock_of
):
    mug = shopper_with(client, sign_in, make_product, post_form, price_cents=2000)
    for forged, status in (("abc", 400), (str(rates["retired"]), 302), (str(rates["dollars"]), 302), ("999999", 302)):
        response = client.post("/checkout", data=checkout_fields(client, shipping_rate_id=forged))
        assert response.status_code == status, forged
        shown = text(response) if status == 400 else text(client.get(response.headers["Location"]))
        assert NOT_OFFERED in shown, forged
    response = client.post("/checkout", data=checkout_fields(client))  # no choice while rates are offered
    assert CHOOSE_ONE in text(client.get(response.headers["Location"]))
    assert latest_order_id(app, "user_ships") is None
    assert stock_of(mug) == 10  # taken and given back in the refused checkout's rollback


@pytest.mark.parametrize("app", [{"STRIPE_AUTOMATIC_TAX": "1"}], indirect=True)
def test_stripe_tax_makes_one_customer_per_order_with_its_shipping_address_and_adds_the_tax(
    app, client, sign_in, make_product, post_form, rates, stripe_standin
):
    shopper_with(client, sign_in, make_product, post_form, price_cents=2000)
    payment_url, order_id = place(app, client, "user_ships", shipping_rate_id=str(rates["standard"]))
    session = session_of(app, order_id)
    assert session["automatic_tax"] == {"enabled": True, "liability": None, "provider": None, "status": "complete"}
    assert session["customer"].startswith("cus_") and session["customer_email"] == "user_ships@example.com"
    with app.test_request_context():
        customer = stripe_client().v1.customers.retrieve(session["customer"]).to_dict()
    assert customer["email"] == "user_ships@example.com"
    assert customer["shipping"]["name"] == "Ada Lovelace"
    assert {k: customer["shipping"]["address"][k] for k in ("line1", "postal_code", "city", "country")} == {
        "line1": "12 Rue de la Paix",
        "postal_code": "75002",
        "city": "Paris",
        "country": "FR",
    }
    # France: the stand-in's 20 %, added to the items and the shipping (prices exclusive by default).
    assert session["total_details"] == {"amount_discount": 0, "amount_shipping": 490, "amount_tax": 498}
    assert session["amount_subtotal"] == 2000 and session["amount_total"] == 2000 + 490 + 498
    # Pay now opens a new attempt: the same Customer (one per order), a new session.
    attempt = re.search(r'name="attempt" value="(\d+)"', text(client.get(f"/orders/{order_id}"))).group(1)
    token = csrf_token_from(client, f"/orders/{order_id}")
    again = client.post(f"/orders/{order_id}/pay", data={"csrf_token": token, "attempt": attempt})
    assert again.status_code == 303 and again.headers["Location"] != payment_url
    second = session_of(app, order_id)
    assert second["id"] != session["id"] and second["customer"] == session["customer"]


@pytest.mark.parametrize("app", [{"STRIPE_AUTOMATIC_TAX": "1", "STRIPE_TAX_BEHAVIOR": "inclusive"}], indirect=True)
def test_with_tax_inclusive_prices_the_tax_is_the_part_of_the_total_that_is_tax(
    app, client, sign_in, make_product, post_form, rates, stripe_standin
):
    shopper_with(client, sign_in, make_product, post_form, price_cents=1200)
    _, order_id = place(app, client, "user_ships", shipping_rate_id=str(rates["express"]))
    session = session_of(app, order_id)
    assert session["amount_total"] == 1200 + 990  # nothing added: the prices hold the tax
    assert session["total_details"]["amount_tax"] == (1200 - 1000) + (990 - 825)


@pytest.mark.parametrize("app", [{"STRIPE_PROMOTION_CODES": "1"}], indirect=True)
def test_promotion_codes_on_stripes_page_take_the_demo_code_and_the_totals_add_up(
    app, client, sign_in, make_product, post_form, rates, stripe_standin
):
    shopper_with(client, sign_in, make_product, post_form, price_cents=2500)
    payment_url, order_id = place(app, client, "user_ships", shipping_rate_id=str(rates["standard"]))
    assert session_of(app, order_id)["allow_promotion_codes"] is True
    path = "/" + payment_url.split("://", 1)[-1].split("/", 1)[1]
    assert "Promotion code" in text(client.get(path))
    token = csrf_token_from(client, path)
    wrong = client.post(path, data={"csrf_token": token, "action": "apply_code", "promotion_code": "FREEBIE"})
    assert wrong.status_code == 400 and "This code is invalid." in text(wrong)
    applied = client.post(path, data={"csrf_token": token, "action": "apply_code", "promotion_code": " demo10 "})
    assert applied.status_code == 303
    session = session_of(app, order_id)
    assert session["total_details"] == {"amount_discount": 250, "amount_shipping": 490, "amount_tax": 0}
    assert session["discounts"] and session["discounts"][0]["promotion_code"].startswith("promo_")
    assert session["amount_total"] == session["amount_subtotal"] - 250 + 490 == 2740
    assert on_standin_page(client, payment_url).status_code == 303
    paid = session_of(app, order_id)  # the completed session (and its event) keeps the breakdown
    assert paid["status"] == "complete" and paid["total_details"]["amount_discount"] == 250
    assert paid["amount_total"] == 2740


def test_without_the_setting_stripes_page_takes_no_code(app, client, sign_in, make_product, post_form, stripe_standin):
    shopper_with(client, sign_in, make_product, post_form, price_cents=2500)
    payment_url, _ = place(app, client, "user_ships")
    path = "/" + payment_url.split("://", 1)[-1].split("/", 1)[1]
    assert "Promotion code" not in text(client.get(path))
    token = csrf_token_from(client, path)
    refused = client.post(path, data={"csrf_token": token, "action": "apply_code", "promotion_code": "DEMO10"})
    assert refused.status_code == 409


def test_the_standin_refuses_tax_without_a_customer_address_and_customer_with_customer_email(app, stripe_standin):
    base = f"{stripe_standin}/dev-stripe/v1"
    auth = {"Authorization": f"Bearer {app.config['STRIPE_SECRET_KEY']}"}
    form = {
        "mode": "payment",
        "success_url": "http://127.0.0.1/ok",
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "eur",
        "line_items[0][price_data][unit_amount]": "500",
        "line_items[0][price_data][product_data][name]": "Mug",
        "automatic_tax[enabled]": "true",
    }
    no_address = requests.post(f"{base}/checkout/sessions", data=form, headers=auth, timeout=10)
    assert no_address.status_code == 400 and "requires a valid address" in no_address.json()["error"]["message"]
    customer = requests.post(f"{base}/customers", data={"email": "a@example.com"}, headers=auth, timeout=10).json()
    both = {**form, "customer": customer["id"], "customer_email": "a@example.com"}
    refused = requests.post(f"{base}/checkout/sessions", data=both, headers=auth, timeout=10)
    assert refused.status_code == 400 and "only specify one" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"STRIPE_AUTOMATIC_TAX": "maybe"}, "STRIPE_AUTOMATIC_TAX must be 1 (on) or 0 (off)"),
        ({"STRIPE_PROMOTION_CODES": "sure"}, "STRIPE_PROMOTION_CODES must be 1 (on) or 0 (off)"),
        ({"STRIPE_TAX_BEHAVIOR": "both"}, "STRIPE_TAX_BEHAVIOR must be exclusive"),
    ],
)
def test_the_settings_refuse_a_value_they_do_not_know(tmp_path, env, problem):
    with pytest.raises(ConfigError) as error:
        load({"SECRET_KEY": "x", **env}, production=False, instance_path=tmp_path)
    assert problem in str(error.value)
    settings = load({"SECRET_KEY": "x"}, production=False, instance_path=tmp_path)
    assert (settings["STRIPE_AUTOMATIC_TAX"], settings["STRIPE_TAX_BEHAVIOR"], settings["STRIPE_PROMOTION_CODES"]) == (
        False,
        "exclusive",
        False,
    )


def test_the_demo_has_two_rates_added_once(app, runner):
    for added in ("2 added", "0 added"):
        result = runner.invoke(args=["seed"])
        assert result.exit_code == 0 and f"Shipping rates: 2 demo rates ({added})." in result.output
    with app.app_context():
        rows = db.session.execute(
            db.select(ShippingRate.name, ShippingRate.price_cents, ShippingRate.free_above_cents).order_by(
                ShippingRate.price_cents
            )
        ).all()
    assert [tuple(row) for row in rows] == [("Standard", 490, 5000), ("Express", 990, None)]
