"""Sign in, land where you were, see your account, sign out: in Chromium, through the local stand-in."""

import pytest
from sqlalchemy import select

from shop.extensions import db
from shop.models import User
from tests.support import live_server

pytestmark = pytest.mark.browser


def test_sign_in_from_account_and_sign_out(make_app, tmp_path, page, screenshot):
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    with live_server(app) as url:
        page.goto(f"{url}/sign-in?next=/account")
        page.get_by_label("E-mail address").fill("grace@example.com")
        page.get_by_label("First name").fill("Grace")
        page.get_by_label("Last name").fill("Hopper")
        screenshot("sign-in")
        page.get_by_role("button", name="Continue").click()

        page.wait_for_url(f"{url}/account")
        assert page.get_by_test_id("account-name").inner_text() == "Grace Hopper"
        assert page.get_by_test_id("account-role").inner_text() == "Shopper"
        assert "Grace Hopper" in page.locator(".site-header").inner_text()
        screenshot("account")

        with app.app_context():
            user = db.session.scalar(select(User).where(User.email == "grace@example.com"))
            assert user is not None and user.first_name == "Grace"

        page.get_by_role("link", name="Sign out").click()
        page.wait_for_url(f"{url}/")
        assert page.get_by_role("link", name="Sign in").is_visible()
        page.goto(f"{url}/account")
        page.wait_for_url(f"{url}/sign-in?next=/account")
