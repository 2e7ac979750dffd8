"""The local Clerk stand-in ends sessions as Clerk does: signing a device out from another one (or
through the Backend API) sends a signed `session.revoked`, signing out sends `session.ended`, both
over HTTP to the app's own webhook; and a revoked session gets no fresh token, from the token
refresh or the handshake."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from shop.extensions import db
from shop.models import WebhookEvent
from tests.support import live_server, wait_for

PAGE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document"}


@pytest.fixture
def standin_app(make_app, tmp_path):
    return make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))


def processed(app, kind: str) -> list[dict]:
    """The payloads of the `kind` webhooks the app processed (signature verified by the real endpoint)."""
    with app.app_context():
        payloads = db.session.scalars(
            select(WebhookEvent.payload).where(WebhookEvent.type == kind, WebhookEvent.status == "processed")
        ).all()
        db.session.rollback()
        return list(payloads)


def signed_in_browser(url: str, email: str = "ada@example.com") -> tuple[requests.Session, str]:
    """A browser signed in through the stand-in; and its session id."""
    browser = requests.Session()
    assert browser.post(f"{url}/dev-clerk/sign-in", json={"email": email, "first_name": "Ada"}).ok
    return browser, browser.get(f"{url}/dev-clerk/me").json()["session_id"]


def path_of(url: str) -> str:
    return urlsplit(url).path


def session_cookie(browser: requests.Session) -> str:
    return next(cookie.value for cookie in browser.cookies if cookie.name == "__session")


def test_signing_a_device_out_from_another_sends_session_revoked(standin_app):
    with live_server(standin_app) as url:
        laptop, laptop_session = signed_in_browser(url)
        phone, phone_session = signed_in_browser(url)
        assert laptop_session != phone_session
        wait_for(lambda: laptop.get(f"{url}/api/me").status_code == 200, what="the user mirrored")
        assert phone.get(f"{url}/api/me").status_code == 200
        devices = laptop.get(f"{url}/dev-clerk/me/sessions").json()
        assert {s["id"] for s in devices["sessions"]} == {laptop_session, phone_session}

        revoked = laptop.post(f"{url}/dev-clerk/me/sessions/{phone_session}/revoke", json={})
        assert (revoked.status_code, revoked.json()["status"]) == (200, "revoked")

        [delivered] = wait_for(lambda: processed(standin_app, "session.revoked"), what="session.revoked processed")
        assert delivered["data"]["id"] == phone_session
        assert delivered["data"]["object"] == "session"
        assert phone.get(f"{url}/api/me").status_code == 401  # its token has not expired: refused all the same
        assert laptop.get(f"{url}/api/me").status_code == 200
        # Clerk mints nothing more for it: not the refresh, not the handshake
        assert phone.post(f"{url}/dev-clerk/tokens", json={}).status_code == 401
        assert laptop.post(f"{url}/dev-clerk/tokens", json={}).status_code == 200


def test_the_handshake_honours_a_revoked_session(standin_app):
    with live_server(standin_app) as url:
        laptop, _ = signed_in_browser(url)
        phone, phone_session = signed_in_browser(url)
        wait_for(lambda: laptop.get(f"{url}/api/me").status_code == 200, what="the user mirrored")
        secret = standin_app.config["STANDIN_SECRET_KEY"]
        response = requests.post(
            f"{url}/dev-clerk/v1/sessions/{phone_session}/revoke",
            headers={"Authorization": f"Bearer {secret}"},
            timeout=10,
        )
        assert (response.status_code, response.json()["status"]) == (200, "revoked")
        wait_for(lambda: processed(standin_app, "session.revoked"), what="session.revoked processed")

        for browser in (laptop, phone):  # the token lapsed: no __session, the client still says signed in
            for cookie in [c for c in browser.cookies if c.name.startswith("__session")]:
                browser.cookies.clear(cookie.domain, cookie.path, cookie.name)
        back = laptop.get(f"{url}/orders", headers=PAGE)
        assert (back.status_code, path_of(back.url)) == (200, "/orders")
        assert went_through_the_handshake(back)  # a fresh token for the live session
        refused = phone.get(f"{url}/orders", headers=PAGE)
        assert went_through_the_handshake(refused)
        assert path_of(refused.url) == "/sign-in"
        # the handshake's cookies sign the revoked session out instead of minting a token for it
        assert phone.cookies.get("__client_uat", path="/") == "0"
        assert not [c for c in phone.cookies if c.name.startswith("__session") and c.value]


def went_through_the_handshake(response: requests.Response) -> bool:
    return any(r.status_code == 307 and "/v1/client/handshake" in r.headers["Location"] for r in response.history)


def test_signing_out_sends_session_ended(standin_app):
    with live_server(standin_app) as url:
        browser, session_id = signed_in_browser(url)
        wait_for(lambda: browser.get(f"{url}/api/me").status_code == 200, what="the user mirrored")
        token = session_cookie(browser)
        assert browser.post(f"{url}/dev-clerk/sign-out", json={}).ok
        [ended] = wait_for(lambda: processed(standin_app, "session.ended"), what="session.ended processed")
        assert (ended["data"]["id"], ended["data"]["status"]) == (session_id, "ended")
        # the token it had (a copy kept by a script, say) signs nobody in any more
        assert (
            requests.get(f"{url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 401
        )


def test_the_backend_api_revokes_only_sessions_it_knows(standin_app):
    with live_server(standin_app) as url:
        browser, session_id = signed_in_browser(url)
        other, other_session = signed_in_browser(url, "grace@example.com")
        auth = {"Authorization": f"Bearer {standin_app.config['STANDIN_SECRET_KEY']}"}
        unknown = requests.post(f"{url}/dev-clerk/v1/sessions/sess_unknown/revoke", headers=auth, timeout=10)
        assert (unknown.status_code, unknown.json()["errors"][0]["code"]) == (404, "resource_not_found")
        assert (
            requests.post(f"{url}/dev-clerk/v1/sessions/{session_id}/revoke", timeout=10).status_code == 401
        )  # secret key
        # a shopper can sign out only their own devices
        assert browser.post(f"{url}/dev-clerk/me/sessions/{other_session}/revoke", json={}).status_code == 404
        assert requests.post(f"{url}/dev-clerk/v1/sessions/{session_id}/revoke", headers=auth, timeout=10).ok
        again = requests.post(f"{url}/dev-clerk/v1/sessions/{session_id}/revoke", headers=auth, timeout=10)
        assert again.json()["status"] == "revoked"
        wait_for(lambda: processed(standin_app, "session.revoked"), what="session.revoked processed")
        assert len(processed(standin_app, "session.revoked")) == 1  # revoking twice tells the app once
        assert other.get(f"{url}/dev-clerk/me").json()["session_id"] == other_session
