"""The local Clerk stand-in: real HTTP, real signed webhooks, the same code paths as Clerk."""

import pytest
import requests
from sqlalchemy import select

from shop.extensions import db
from shop.models import User, WebhookEvent
from tests.support import live_server, wait_for


@pytest.fixture
def standin_app(make_app, tmp_path):
    return make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))


def mirrored(app, clerk_id):
    with app.app_context():
        db.session.expire_all()
        return db.session.scalar(select(User).where(User.clerk_id == clerk_id))


def test_banner_on_every_page(standin_app):
    client = standin_app.test_client()
    for path in ("/sign-in", "/no-such-page"):
        assert b"Local Clerk stand-in is on" in client.get(path).data


def test_real_clerk_pages_have_no_banner(client):
    assert b"Local Clerk stand-in" not in client.get("/sign-in").data


def test_backend_api_needs_the_secret_key(standin_app):
    client = standin_app.test_client()
    response = client.get("/dev-clerk/v1/users/count")
    assert response.status_code == 401
    assert response.json["errors"][0]["code"] == "clerk_key_invalid"
    secret = standin_app.config["STANDIN_SECRET_KEY"]
    ok = client.get("/dev-clerk/v1/users/count", headers={"Authorization": f"Bearer {secret}"})
    assert ok.json == {"object": "total_count", "total_count": 0}


def test_browser_calls_must_be_json(standin_app):
    response = standin_app.test_client().post("/dev-clerk/sign-in", data={"email": "a@example.com"})
    assert response.status_code == 415


def test_sign_in_mints_a_session_and_delivers_a_signed_webhook(standin_app):
    with live_server(standin_app) as url:
        browser = requests.Session()
        response = browser.post(
            f"{url}/dev-clerk/sign-in", json={"email": "ada@example.com", "first_name": "Ada", "last_name": "L"}
        )
        assert response.status_code == 200
        assert int(browser.cookies["__client_uat"]) > 0
        clerk_id = response.json()["user"]["id"]

        # The webhook arrives over HTTP, signed, through the real endpoint.
        def delivered():
            with standin_app.app_context():
                return db.session.scalar(
                    select(WebhookEvent).where(
                        WebhookEvent.clerk_user_id == clerk_id, WebhookEvent.status == "processed"
                    )
                )

        assert wait_for(delivered, what="the signed webhook processed").type == "user.created"
        assert mirrored(standin_app, clerk_id).email == "ada@example.com"

        me = browser.get(f"{url}/api/me")
        assert (me.status_code, me.json()["first_name"]) == (200, "Ada")

        fresh = browser.post(f"{url}/dev-clerk/tokens", json={})
        assert fresh.status_code == 200 and fresh.json()["jwt"].count(".") == 2

        browser.post(f"{url}/dev-clerk/profile", json={"first_name": "Augusta", "last_name": "King"})
        wait_for(lambda: mirrored(standin_app, clerk_id).first_name == "Augusta", what="the new name mirrored")

        browser.post(f"{url}/dev-clerk/sign-out", json={})
        assert browser.cookies.get("__client_uat") == "0"
        assert browser.get(f"{url}/api/me").status_code == 401
        assert browser.post(f"{url}/dev-clerk/tokens", json={}).status_code == 401


def test_first_sign_in_is_provisioned_through_the_standins_backend_api(standin_app):
    """If the page arrives before the webhook, the app asks the stand-in's Backend API over HTTP."""
    from devtools.clerk_standin.store import UserStore

    user, _ = UserStore(standin_app.config["SHOP_DEV_CLERK_DIR"]).sign_in(
        "early@example.com", "Early", None, "https://img.clerk.com/early"
    )
    with live_server(standin_app) as url:
        browser = requests.Session()
        browser.post(f"{url}/dev-clerk/sign-in", json={"email": "early@example.com"})
        me = browser.get(f"{url}/api/me")
        assert me.status_code == 200
        assert me.json()["clerk_id"] == user["id"]


def test_deleting_the_account_tombstones_it(standin_app):
    with live_server(standin_app) as url:
        browser = requests.Session()
        clerk_id = browser.post(f"{url}/dev-clerk/sign-in", json={"email": "bye@example.com"}).json()["user"]["id"]
        wait_for(lambda: mirrored(standin_app, clerk_id), what="the mirror row")
        browser.post(f"{url}/dev-clerk/delete-account", json={})
        wait_for(lambda: mirrored(standin_app, clerk_id).deleted_at is not None, what="the tombstone")


def test_the_shim_sets_the_cookies_clerk_js_sets(standin_app):
    """`__session` and `__client_uat`, each also suffixed for the instance, readable by scripts, SameSite=Lax."""
    from devtools.clerk_standin import PUBLISHABLE_KEY
    from shop.clerk.keys import cookie_suffix

    suffix = cookie_suffix(PUBLISHABLE_KEY)
    with live_server(standin_app) as url:
        browser = requests.Session()
        answer = browser.post(f"{url}/dev-clerk/sign-in", json={"email": "cookies@example.com"})
        set_cookies = answer.raw.headers.getlist("Set-Cookie")
        for name in ("__session", f"__session_{suffix}", "__client_uat", f"__client_uat_{suffix}"):
            header = next(h for h in set_cookies if h.startswith(f"{name}="))
            assert "SameSite=Lax" in header and "Path=/" in header and "HttpOnly" not in header, header
        assert browser.cookies["__session"] == browser.cookies[f"__session_{suffix}"]
        assert browser.cookies["__client_uat"] == browser.cookies[f"__client_uat_{suffix}"] != "0"

        browser.cookies.set("__session", "stale-unsuffixed-copy")  # the suffixed cookie is the one read
        assert browser.get(f"{url}/api/me").status_code == 200

        browser.post(f"{url}/dev-clerk/sign-out", json={})
        assert browser.cookies.get("__client_uat") == browser.cookies.get(f"__client_uat_{suffix}") == "0"
        assert f"__session_{suffix}" not in browser.cookies and browser.get(f"{url}/api/me").status_code == 401
