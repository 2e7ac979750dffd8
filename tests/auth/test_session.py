"""Every request knows who is signed in, from the session token; any bad token means signed out."""

import json
import time

import pytest
from sqlalchemy import select

from shop.extensions import db
from shop.models import User
from tests.support import TokenMinter, deleted_event


def test_signed_in_by_cookie(client, sign_in):
    user = sign_in("user_a", email="a@example.com")
    response = client.get("/api/me")
    assert response.status_code == 200
    assert response.json == {
        "id": user.id,
        "clerk_id": "user_a",
        "email": "a@example.com",
        "first_name": user.first_name,
        "last_name": user.last_name,
        "image_url": None,
        "role": "CLIENT",
    }


def test_bearer_header_wins_over_the_cookie(client, make_user, tokens):
    make_user("user_cookie")
    make_user("user_bearer")
    client.set_cookie("__session", tokens.mint("user_cookie"))
    response = client.get("/api/me", headers={"Authorization": f"Bearer {tokens.mint('user_bearer')}"})
    assert response.json["clerk_id"] == "user_bearer"


def test_suffixed_cookie_is_read(client, make_user, tokens):
    from shop.clerk.keys import cookie_suffix
    from tests.support import TEST_PUBLISHABLE_KEY

    make_user("user_suffixed")
    suffix = cookie_suffix(TEST_PUBLISHABLE_KEY)
    client.set_cookie(f"__session_{suffix}", tokens.mint("user_suffixed"))
    client.set_cookie(f"__client_uat_{suffix}", str(int(time.time()) - 60))  # clerk-js writes both
    assert client.get("/api/me").json["clerk_id"] == "user_suffixed"


def test_not_signed_in_is_401_json(client):
    response = client.get("/api/me")
    assert (response.status_code, response.json) == (401, {"error": "Not signed in"})


BAD_TOKENS = {
    "expired": lambda t: t.mint("user_a", exp=int(time.time()) - 60, iat=int(time.time()) - 120),
    "future-nbf": lambda t: t.mint("user_a", nbf=int(time.time()) + 60),
    "wrong-issuer": lambda t: t.mint("user_a", iss="https://other.clerk.accounts.dev"),
    "other-key": lambda t: TokenMinter().mint("user_a"),
    "no-sid": lambda t: t.mint("user_a", sid=None),
    "pending": lambda t: t.mint("user_a", sts="pending"),
    "garbage": lambda t: "garbage",
    "huge": lambda t: "x" * 20_000,
    "unicode": lambda t: "\u00e9\u00e9.\u00e9.\u00e9",
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_bad_tokens_are_signed_out_never_500(client, make_user, tokens, kind):
    make_user("user_a")
    token = BAD_TOKENS[kind](tokens)
    client.set_cookie("__session", token.encode("utf-8").decode("latin-1"))
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code in (200, 404)  # the catalogue may not exist yet; never a 500
    assert b"user_a" not in page.data


def test_oversized_authorization_header(client):
    response = client.get("/api/me", headers={"Authorization": "Bearer " + "a" * 60_000})
    assert response.status_code in (401, 431)


def test_tombstoned_user_with_a_valid_token_is_signed_out(app, client, sign_in, deliver):
    sign_in("user_gone")
    assert client.get("/api/me").status_code == 200
    assert deliver(deleted_event("user_gone")).status_code == 200
    assert client.get("/api/me").status_code == 401


def test_signed_out_in_another_tab(client, sign_in):
    sign_in("user_a")
    client.set_cookie("__client_uat", "0")
    assert client.get("/api/me").status_code == 401


def statements_of(app, request) -> list[str]:
    from sqlalchemy import event

    statements: list[str] = []

    def record(connection, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        request()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return statements


def test_a_repeated_token_costs_one_query_the_mirror_row(app, client, sign_in):
    """The verified-token cache answers for the token; the user's row is read on every request."""
    sign_in("user_a")
    assert client.get("/api/me").status_code == 200
    statements = statements_of(app, lambda: client.get("/api/me"))
    assert len(statements) == 1 and "FROM users" in statements[0]


# --- the refresh page (Clerk's interstitial) -----------------------------------------------------------

PAGE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document"}


def expired(tokens, sub="user_a"):
    return tokens.mint(sub, exp=int(time.time()) - 60, iat=int(time.time()) - 120)


def test_expired_token_with_client_uat_gets_the_refresh_page(client, make_user, tokens):
    make_user("user_a")
    client.set_cookie("__session", expired(tokens))
    client.set_cookie("__client_uat", str(int(time.time()) - 300))
    response = client.get("/account", headers=PAGE)
    assert response.status_code == 401
    assert b'data-clerk="refresh"' in response.data
    assert response.headers["Cache-Control"] == "no-store"


def test_missing_token_with_client_uat_gets_the_refresh_page(client):
    client.set_cookie("__client_uat", str(int(time.time())))
    assert b'data-clerk="refresh"' in client.get("/account", headers=PAGE).data


def test_token_older_than_client_uat_gets_the_refresh_page(client, make_user, tokens):
    make_user("user_a")
    client.set_cookie("__session", tokens.mint("user_a", iat=int(time.time()) - 30))
    client.set_cookie("__client_uat", str(int(time.time())))
    assert b'data-clerk="refresh"' in client.get("/account", headers=PAGE).data


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/api/me", PAGE),
        ("POST", "/account", PAGE),
        ("GET", "/account", {"Accept": "application/json"}),
        ("GET", "/account", {**PAGE, "Sec-Fetch-Dest": "image"}),
    ],
)
def test_refresh_page_only_for_get_page_navigations(client, make_user, tokens, method, path, headers):
    make_user("user_a")
    client.set_cookie("__session", expired(tokens))
    client.set_cookie("__client_uat", str(int(time.time())))
    response = client.open(path, method=method, headers=headers)
    assert b'data-clerk="refresh"' not in response.data
    assert response.status_code in (302, 400, 401, 405)


def test_no_refresh_page_when_signed_out_or_forged(client, tokens):
    client.set_cookie("__client_uat", "0")
    assert b'data-clerk="refresh"' not in client.get("/account", headers=PAGE).data
    client.set_cookie("__client_uat", str(int(time.time())))
    client.set_cookie("__session", TokenMinter().mint("user_a"))  # forged, not expired
    assert b'data-clerk="refresh"' not in client.get("/account", headers=PAGE).data


def test_refresh_never_loops(client, make_user, tokens):
    make_user("user_a")
    client.set_cookie("__session", expired(tokens))
    client.set_cookie("__client_uat", str(int(time.time())))
    assert b'data-clerk="refresh"' in client.get("/account", headers=PAGE).data
    client.set_cookie("__shop_refresh", "1")  # what the refresh page sets before reloading
    response = client.get("/account", headers=PAGE)
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]


def test_after_refresh_the_fresh_token_signs_in(client, make_user, tokens):
    make_user("user_a")
    client.set_cookie("__client_uat", str(int(time.time()) - 5))
    client.set_cookie("__session", tokens.mint("user_a"))
    client.set_cookie("__shop_refresh", "1")
    assert client.get("/account", headers=PAGE).status_code == 200


def test_user_row_is_untouched_by_reading(app, client, sign_in):
    sign_in("user_a")
    client.get("/api/me")
    with app.app_context():
        assert db.session.scalar(select(User.needs_resync).where(User.clerk_id == "user_a")) is False


# --- only a Bearer token switches off the cookie rules (issue 10, item 2) -------------------------------


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNzd29yZA==", "Digest username=x", "bearer lowercase"])
def test_other_authorization_schemes_keep_the_cookie_rules(client, make_user, tokens, authorization):
    """Basic auth in front of a staging site must not let a signed-out or stale cookie sign in."""
    make_user("user_a")
    client.set_cookie("__session", tokens.mint("user_a"))
    client.set_cookie("__client_uat", "0")  # signed out in another tab
    assert client.get("/api/me", headers={"Authorization": authorization}).status_code == 401
    client.set_cookie("__session", tokens.mint("user_a", iat=int(time.time()) - 30))
    client.set_cookie("__client_uat", str(int(time.time())))  # the client changed after this token
    assert client.get("/api/me", headers={"Authorization": authorization}).status_code == 401
    client.set_cookie("__client_uat", str(int(time.time()) - 60))
    assert client.get("/api/me", headers={"Authorization": authorization}).status_code == 200


def test_a_bearer_token_is_judged_alone(client, make_user, tokens):
    make_user("user_a")
    client.set_cookie("__client_uat", "0")
    assert client.get("/api/me", headers={"Authorization": f"Bearer {tokens.mint('user_a')}"}).status_code == 200


# --- links back to this page never leave the site (issue 10, item 9) -------------------------------------


@pytest.mark.parametrize("path", ["/%5Cevil.example/", "/%5C%5Cevil.example/", "/%5C/evil.example/"])
def test_the_refresh_pages_reload_link_stays_on_the_site(client, path):
    client.set_cookie("__client_uat", str(int(time.time())))
    response = client.get(path, headers=PAGE)
    assert response.status_code == 401 and b'data-clerk="refresh"' in response.data
    assert b'href="/\\' not in response.data and b'href="//' not in response.data
    assert b'<a href="/">Reload</a>' in response.data


def test_the_account_pending_try_again_link_stays_on_the_site(make_app, tokens):
    app = make_app(CLERK_SECRET_KEY="sk_test_x", CLERK_API_URL="http://127.0.0.1:9/v1")  # Clerk unreachable
    client = app.test_client()
    client.set_cookie("__session", tokens.mint("user_waiting"))
    client.set_cookie("__clerk_db_jwt", "dvb_test")
    response = client.get("/%5Cevil.example/", headers=PAGE)
    assert response.status_code == 503 and b"being set up" in response.data
    assert b'href="/\\' not in response.data
    assert b'href="/">Try again</a>' in response.data


# --- Clerk's handshake, through the app (a secret key is configured) --------------------------------------

LIVE_KEY = "pk_live_Y2xlcmsuc2hvcC50ZXN0JA"  # the same Frontend API host, a production instance


@pytest.fixture
def handshake_app(make_app, httpserver):
    """Production-type Clerk instance whose Backend API (handshake payloads) is a real local server."""
    payloads: dict[str, list[str]] = {}

    def payload(request):
        from werkzeug import Response

        if request.args.get("nonce") not in payloads:
            return Response('{"errors": [{"code": "resource_not_found", "message": "nope"}]}', 404)
        return Response(json.dumps({"directives": payloads[request.args["nonce"]]}), content_type="application/json")

    httpserver.expect_request("/v1/clients/handshake_payload").respond_with_handler(payload)
    app = make_app(
        CLERK_PUBLISHABLE_KEY=LIVE_KEY, CLERK_SECRET_KEY="sk_live_handshake", CLERK_API_URL=httpserver.url_for("/v1")
    )
    app.config["TEST_PAYLOADS"] = payloads
    return app


def test_a_lapsed_page_navigation_is_sent_through_the_handshake(handshake_app, make_user, tokens):
    make_user("user_a")
    client = handshake_app.test_client()
    client.set_cookie("__session", expired(tokens))
    client.set_cookie("__client_uat", str(int(time.time()) - 300))
    response = client.get("/account?tab=1", headers=PAGE)
    assert response.status_code == 307 and response.headers["Cache-Control"] == "no-store"
    assert response.headers["Location"].startswith("https://clerk.shop.test/v1/client/handshake?redirect_url=")
    assert "__clerk_redirect_count=1" in response.headers["Set-Cookie"]
    assert b'data-clerk="refresh"' not in response.data  # no interstitial where a secret key is set


def test_api_calls_and_posts_are_never_redirected(handshake_app, make_user, tokens):
    make_user("user_a")
    client = handshake_app.test_client()
    client.set_cookie("__session", expired(tokens))
    client.set_cookie("__client_uat", str(int(time.time()) - 300))
    api = client.get("/api/me", headers={"Accept": "application/json"})
    assert (api.status_code, api.json) == (401, {"error": "Not signed in"})
    assert client.post("/account", headers=PAGE).status_code != 307


def test_the_handshakes_cookies_reach_the_browser_with_the_page(handshake_app, make_user, tokens):
    make_user("user_a", first_name="Ada", last_name="Back")
    fresh = tokens.mint("user_a")
    handshake_app.config["TEST_PAYLOADS"]["n1"] = [f"__session={fresh}; Path=/; SameSite=Lax", "__client_uat=5; Path=/"]
    client = handshake_app.test_client()
    client.set_cookie("__clerk_handshake_nonce", "n1")
    response = client.get("/account", headers=PAGE)
    assert response.status_code == 200 and b"Ada Back" in response.data
    assert f"__session={fresh}; Path=/; SameSite=Lax" in response.headers.getlist("Set-Cookie")
    assert response.headers["Cache-Control"] == "no-store"


def test_an_unknown_nonce_serves_the_page_signed_out(handshake_app):
    client = handshake_app.test_client()
    client.set_cookie("__clerk_handshake_nonce", "unknown")
    response = client.get("/account", headers=PAGE)
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]  # signed out: no loop
