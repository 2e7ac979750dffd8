"""The shopper's "news and offers by e-mail" choice on /account, in Chromium: the box calls clerk-js
`user.updateMetadata({unsafeMetadata: {marketing_opt_in}})`, Clerk answers and sends the signed
`user.updated`, and the webhook mirrors it into users.marketing_opt_in.

With the REAL clerk-js 6 bundle against the suite's Frontend API (tests/e2e/frontend_api.py, the app
under gunicorn as in test_real_clerk_js.py), and with the local stand-in that `make run` uses.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import select

from shop.extensions import db
from shop.models import User
from tests.e2e import test_real_clerk_js as real_clerk_js
from tests.e2e.test_real_clerk_js import USER_ID, sign_in_with_email_code, wait_for_clerk
from tests.support import live_server, wait_for

pytestmark = pytest.mark.browser

# The real-clerk-js module's fixtures: Ada known from user.created (on the gunicorn server of
# tests/e2e/conftest.py), the Frontend API.
_needs_the_bundles = real_clerk_js._needs_the_bundles
shop = real_clerk_js.shop
fapi = real_clerk_js.fapi
watched = real_clerk_js.watched

LABEL = "Send me news and offers by e-mail"
SAVED_IN = "Saved: we will send you news and offers by e-mail."
SAVED_OUT = "Saved: we will not send you news or offers by e-mail."
NOT_SAVED = "Your choice could not be saved, so nothing changed: check your connection and try again."
NEEDS_JS = "Changing this needs JavaScript, which is off or blocked in this browser."


def opted_in(app, clerk_id: str = USER_ID) -> bool | None:
    """users.marketing_opt_in of the user's row, as the mirror holds it now."""
    with app.app_context():
        return db.session.scalar(select(User.marketing_opt_in).where(User.clerk_id == clerk_id))


def wait_in_page(page, condition, what: str) -> None:
    """Poll a condition while the page's events (and the Frontend API's routes) keep flowing."""
    wait_for(
        condition, timeout=15, what=what, interval=0.05, pause=lambda seconds: page.wait_for_timeout(seconds * 1000)
    )


def rendered_checked(html: str) -> bool:
    """Whether the server rendered the box ticked (read from the HTML, before any script ran)."""
    box = re.search(r'<input type="checkbox" id="marketing-opt-in"[^>]*>', html)
    assert box is not None and " disabled" in box.group(0), "the box is rendered, disabled until Clerk has loaded"
    return " checked" in box.group(0)


def test_the_box_reaches_the_mirror_through_real_clerk_js_and_the_webhook(watched, fapi, shop, make_app):
    page = watched
    app = make_app()
    fapi.unsafe_metadata = {"theme": "dark"}  # something else the shopper's browser keeps there
    sign_in_with_email_code(page, shop, "/account")
    box = page.get_by_role("checkbox", name=LABEL)  # found by its <label>
    status = page.locator("#marketing-opt-in-status")
    expect(box).to_be_enabled()  # clerk-js has loaded
    expect(box).not_to_be_checked()
    expect(page.get_by_text(NEEDS_JS)).to_have_count(0)  # JavaScript runs: no sentence saying it is needed
    assert opted_in(app) is False

    sent = []
    page.on("request", lambda r: sent.append(r) if urlsplit(r.url).path == "/v1/me/metadata" else None)
    box.check()
    expect(status).to_have_text(SAVED_IN)
    wait_in_page(page, lambda: opted_in(app) is True, "users.marketing_opt_in true")
    # The request clerk-js 6.40 sends for updateMetadata: POST with `_method=PATCH`, form-encoded, the object
    # as JSON in `unsafe_metadata`, and only the key that changed (Clerk deep-merges it).
    (request,) = sent
    assert request.method == "POST" and parse_qs(urlsplit(request.url).query)["_method"] == ["PATCH"]
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.post_data or "") == {"unsafe_metadata": ['{"marketing_opt_in":true}']}
    assert ("PATCH", "/v1/me/metadata") in fapi.calls
    assert fapi.metadata_updates == [{"marketing_opt_in": True}]
    assert fapi.unsafe_metadata == {"theme": "dark", "marketing_opt_in": True}

    response = page.reload()
    assert response is not None and rendered_checked(response.text())  # from the mirror
    wait_for_clerk(page)
    expect(box).to_be_checked()
    expect(box).to_be_enabled()

    box.uncheck()
    expect(status).to_have_text(SAVED_OUT)
    wait_in_page(page, lambda: opted_in(app) is False, "users.marketing_opt_in false again")
    assert fapi.metadata_updates[-1] == {"marketing_opt_in": False}

    response = page.reload()
    assert response is not None and not rendered_checked(response.text())
    wait_for_clerk(page)
    expect(box).to_be_enabled()
    expect(box).not_to_be_checked()

    wait_in_page(page, lambda: len(fapi.webhooks) == 2, "both user.updated deliveries answered")
    assert fapi.webhooks == [("user.updated", 200), ("user.updated", 200)]
    assert page.problems == []
    assert fapi.unknown == []


def test_the_box_follows_clerk_when_the_mirror_trails(watched, fapi, shop, make_app):
    """Clerk holds the choice: until its webhook lands, the page shows Clerk's value, not the mirror's."""
    page = watched
    app = make_app()
    fapi.unsafe_metadata = {"marketing_opt_in": True}  # set at Clerk; no user.updated sent
    sign_in_with_email_code(page, shop, "/account")
    box = page.get_by_role("checkbox", name=LABEL)
    expect(box).to_be_enabled()
    expect(box).to_be_checked()
    assert opted_in(app) is False


def test_a_refused_save_is_said_and_the_box_put_back(watched, fapi, shop, make_app):
    page = watched
    app = make_app()
    fapi.refuse_metadata = True
    sign_in_with_email_code(page, shop, "/account")
    box = page.get_by_role("checkbox", name=LABEL)
    expect(box).to_be_enabled()

    box.click()
    status = page.locator("#marketing-opt-in-status")
    expect(status).to_have_text(NOT_SAVED)
    expect(box).not_to_be_checked()
    expect(box).to_be_enabled()  # the shopper can try again
    assert ("PATCH", "/v1/me/metadata") in fapi.calls
    assert fapi.webhooks == [] and opted_in(app) is False


def test_the_box_with_the_local_standin(make_app, tmp_path, page):
    """`make run`'s path: clerk-standin.js's updateMetadata, the stand-in's PATCH and its signed webhook."""
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    with live_server(app) as url:
        page.goto(f"{url}/sign-in?next=/account")
        page.get_by_label("E-mail address").fill("grace@example.com")
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url(f"{url}/account")
        box = page.get_by_role("checkbox", name=LABEL)
        status = page.locator("#marketing-opt-in-status")
        expect(box).to_be_enabled()  # the stand-in's Clerk has loaded
        clerk_id = page.evaluate("window.Clerk.user.id")
        expect(box).not_to_be_checked()

        box.check()
        expect(status).to_have_text(SAVED_IN)
        wait_in_page(page, lambda: opted_in(app, clerk_id) is True, "users.marketing_opt_in true")
        page.reload()
        expect(box).to_be_enabled()
        expect(box).to_be_checked()

        box.uncheck()
        expect(status).to_have_text(SAVED_OUT)
        wait_in_page(page, lambda: opted_in(app, clerk_id) is False, "users.marketing_opt_in false")


def test_without_javascript_the_box_is_disabled_and_says_why(make_app, tmp_path, browser):
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    with live_server(app) as url:
        shopper = requests.Session()  # signs in and opts in the way the stand-in's browser side does
        clerk_id = shopper.post(f"{url}/dev-clerk/sign-in", json={"email": "nojs@example.com"}, timeout=10).json()[
            "user"
        ]["id"]
        shopper.patch(f"{url}/dev-clerk/me/metadata", json={"unsafe_metadata": {"marketing_opt_in": True}}, timeout=10)
        wait_for(lambda: opted_in(app, clerk_id) is True, what="the opt-in mirrored")

        context = browser.new_context(java_script_enabled=False)
        try:
            context.add_cookies(
                [{"name": c.name, "value": c.value or "", "url": url} for c in shopper.cookies if c.path == "/"]
            )
            page = context.new_page()
            page.goto(f"{url}/account")
            box = page.get_by_role("checkbox", name=LABEL)
            expect(box).to_be_disabled()
            expect(box).to_have_accessible_description(NEEDS_JS)
            expect(box).to_be_checked()  # the mirror's value
            expect(page.get_by_text(NEEDS_JS)).to_be_visible()
        finally:
            context.close()
