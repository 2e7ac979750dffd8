"""The sign-in, sign-out and account pages, and the header every page shows."""

import pytest

from shop.clerk.frontend import CLERK_JS_MAJOR, CLERK_UI_MAJOR
from tests.support import csrf_token


def test_sign_in_page_loads_clerk_js_from_the_frontend_api(client):
    page = client.get("/sign-in?next=/account").get_data(as_text=True)
    assert f"https://clerk.shop.test/npm/@clerk/clerk-js@{CLERK_JS_MAJOR}/dist/clerk.browser.js" in page
    assert f"https://clerk.shop.test/npm/@clerk/ui@{CLERK_UI_MAJOR}/dist/ui.browser.js" in page
    assert (CLERK_JS_MAJOR, CLERK_UI_MAJOR) == (6, 1)
    assert 'data-clerk-publishable-key="pk_test_Y2xlcmsuc2hvcC50ZXN0JA"' in page
    assert 'data-clerk="sign-in" data-redirect="/account"' in page


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example.com/",
        "//evil.example.com",
        "/\\evil.example.com",
        "javascript:alert(1)",
        "account",
    ],
)
def test_next_only_leads_to_our_own_paths(client, target):
    page = client.get("/sign-in", query_string={"next": target}).get_data(as_text=True)
    assert 'data-redirect="/"' in page


def test_signed_in_user_is_sent_on_from_sign_in(client, sign_in):
    sign_in("user_a")
    response = client.get("/sign-in?next=/account")
    assert (response.status_code, response.headers["Location"]) == (302, "/account")


def test_without_clerk_settings_the_page_says_what_is_missing(make_app):
    app = make_app(CLERK_PUBLISHABLE_KEY="", CLERK_JWT_KEY="")
    page = app.test_client().get("/sign-in").get_data(as_text=True)
    assert "Sign-in is not configured" in page
    assert "CLERK_PUBLISHABLE_KEY" in page and "API keys" in page
    assert "clerk.browser.js" not in page


def test_header_shows_the_signed_in_user(client, sign_in):
    sign_in("user_a", first_name="Grace", last_name="Hopper")
    page = client.get("/account").get_data(as_text=True)
    assert "Grace Hopper" in page
    assert 'data-testid="account-role">Shopper' in page
    assert "Sign out" in page


def test_header_shows_a_sign_in_link_when_signed_out(client):
    page = client.get("/sign-in").get_data(as_text=True)
    assert "Sign in" in page and "Sign out" not in page


def test_account_requires_sign_in(client):
    response = client.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"] == "/sign-in?next=/account"


def test_sign_out_page_signs_out_through_clerk_js(client):
    page = client.get("/sign-out").get_data(as_text=True)
    assert 'data-clerk="sign-out" data-redirect="/"' in page


def test_not_found_page_in_the_shops_style(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert b"Back to the shop" in response.data


def test_signed_out_form_post_returns_to_the_form_page_after_sign_in(app, client):
    """The Clerk session lapsed while the form was open: after sign-in, back to the form's page, not a 405."""
    token = csrf_token(app, client)
    response = client.post(
        "/admin/orders/1/status",
        data={"csrf_token": token, "status": "shipped"},
        headers={"Referer": "http://localhost/admin/orders?status=placed"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/sign-in?next=/admin/orders?status%3Dplaced"


def test_signed_out_form_post_from_another_site_returns_home(app, client):
    token = csrf_token(app, client)
    response = client.post(
        "/admin/orders/1/status",
        data={"csrf_token": token},
        headers={"Referer": "https://evil.example.com/admin/orders"},
    )
    assert response.headers["Location"] == "/sign-in?next=/"
