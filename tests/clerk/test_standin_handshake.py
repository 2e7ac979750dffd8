"""The handshake through the local stand-in's Frontend and Backend API, over real HTTP, redirect by redirect."""

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from devtools.clerk_standin import ISSUER, KEY_ID
from devtools.clerk_standin.keys import mint
from shop.extensions import db
from shop.models import User
from tests.support import live_server, wait_for

PAGE = {"Accept": "text/html", "Sec-Fetch-Dest": "document"}


@pytest.fixture
def standin_app(make_app, tmp_path):
    return make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))


def signed_in_browser(url: str, app, email: str = "ada@example.com") -> tuple[requests.Session, str]:
    browser = requests.Session()
    response = browser.post(f"{url}/dev-clerk/sign-in", json={"email": email, "first_name": "Ada", "last_name": "L"})
    clerk_id = response.json()["user"]["id"]

    def mirrored() -> int | None:
        with app.app_context():
            return db.session.scalar(select(User.id).where(User.clerk_id == clerk_id))

    wait_for(mirrored, what=f"the stand-in's webhook to create the mirror row of {clerk_id}")
    return browser, clerk_id


def lapse_token(app, browser: requests.Session, clerk_id: str) -> None:
    """The 60-second token lapsed while the tab slept: same user, same session, expired."""
    now = int(time.time())
    claims = {"sub": clerk_id, "sid": "sess_lapsed", "iss": ISSUER, "iat": now - 120, "nbf": now - 125, "exp": now - 60}
    set_cookie(browser, "__session", mint(app.config["STANDIN_PRIVATE_KEY"], KEY_ID, claims))
    set_cookie(browser, "__client_uat", str(now - 300))


def set_cookie(browser: requests.Session, name: str, value: str) -> None:
    """Replace the cookie the app set (one per name, as a browser keeps it)."""
    for cookie in [c for c in browser.cookies if c.name == name]:
        browser.cookies.clear(cookie.domain, cookie.path, cookie.name)
    browser.cookies.set(name, value, domain="127.0.0.1", path="/")


def test_a_lapsed_token_is_renewed_by_redirect_and_the_page_is_served_signed_in(standin_app):
    with live_server(standin_app) as url:
        browser, clerk_id = signed_in_browser(url, standin_app)
        lapse_token(standin_app, browser, clerk_id)

        out = browser.get(f"{url}/orders?page=1", headers=PAGE, allow_redirects=False)
        assert out.status_code == 307 and out.headers["Cache-Control"] == "no-store"
        target = urlsplit(out.headers["Location"])
        assert f"{target.scheme}://{target.netloc}{target.path}" == f"{url}/dev-clerk/fapi/v1/client/handshake"
        query = parse_qs(target.query)
        assert query["redirect_url"] == [f"{url}/orders?page=1"]
        assert query["format"] == ["nonce"] and query["suffixed_cookies"] == ["false"]
        assert query["__clerk_hs_reason"] == ["session-token-expired-refresh-non-eligible-no-refresh-cookie"]
        assert "__clerk_redirect_count=1" in out.headers["Set-Cookie"]

        back = browser.get(out.headers["Location"], allow_redirects=False)
        assert back.status_code == 307 and back.headers["Location"] == f"{url}/orders?page=1"
        assert browser.cookies.get("__clerk_handshake_nonce")

        page = browser.get(back.headers["Location"], headers=PAGE, allow_redirects=False)
        assert page.status_code == 200
        assert b"Ada L" in page.content  # signed in on this very request
        fresh = browser.cookies.get("__session")
        assert fresh and fresh != out.request.headers["Cookie"]
        assert not browser.cookies.get("__clerk_handshake_nonce")  # Clerk's directives cleared it
        assert browser.get(f"{url}/api/me").json()["clerk_id"] == clerk_id


def test_a_signed_out_browser_comes_back_signed_out(standin_app):
    with live_server(standin_app) as url:
        browser = requests.Session()
        set_cookie(browser, "__client_uat", str(int(time.time()) - 30))  # says signed in; Clerk knows better
        page = browser.get(f"{url}/orders", headers=PAGE)
        assert page.url.startswith(f"{url}/sign-in")  # /orders wants a sign-in
        assert browser.cookies.get("__client_uat") == "0"
        assert len(page.history) <= 4


def test_a_nonce_works_once(standin_app):
    with live_server(standin_app) as url:
        browser, clerk_id = signed_in_browser(url, standin_app)
        lapse_token(standin_app, browser, clerk_id)
        out = browser.get(f"{url}/", headers=PAGE, allow_redirects=False)
        browser.get(out.headers["Location"], allow_redirects=False)
        nonce = browser.cookies.get("__clerk_handshake_nonce")
        secret = standin_app.config["STANDIN_SECRET_KEY"]
        api = f"{url}/dev-clerk/v1/clients/handshake_payload"
        first = requests.get(api, params={"nonce": nonce}, headers={"Authorization": f"Bearer {secret}"}, timeout=10)
        assert first.status_code == 200 and any(d.startswith("__session=ey") for d in first.json()["directives"])
        again = requests.get(api, params={"nonce": nonce}, headers={"Authorization": f"Bearer {secret}"}, timeout=10)
        assert again.status_code == 404 and again.json()["errors"][0]["code"] == "resource_not_found"
        # The browser brings the used nonce back: Clerk does not know it, so signed out, never a 500 or a loop.
        replay = browser.get(f"{url}/", headers=PAGE, allow_redirects=False)
        assert replay.status_code == 200


@pytest.mark.parametrize("redirect_url", ["https://evil.example/", "//evil.example/", "javascript:alert(1)"])
def test_the_frontend_api_only_returns_to_this_site(standin_app, redirect_url):
    response = standin_app.test_client().get(
        "/dev-clerk/fapi/v1/client/handshake", query_string={"redirect_url": redirect_url, "format": "nonce"}
    )
    assert response.status_code == 400 and "Location" not in response.headers


def test_the_backend_api_needs_the_secret_key(standin_app):
    response = standin_app.test_client().get("/dev-clerk/v1/clients/handshake_payload?nonce=" + "a" * 32)
    assert response.status_code == 401
