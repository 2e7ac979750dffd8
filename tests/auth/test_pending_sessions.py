"""A session with a task to finish (`sts: "pending"`: reset a password, set up MFA…) is not signed
in: a page navigation goes to /sign-in, where Clerk's component shows the task, and comes back to
the page it asked for; the API answers 401 JSON, never a redirect."""

from __future__ import annotations

import html
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from shop.auth.session import PENDING_TASK
from shop.clerk import tokens as clerk_tokens
from tests.support import TEST_ISSUER, csrf_token

PAGE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document"}


@pytest.fixture
def pending(client, make_user, tokens):
    """A mirrored shopper whose browser carries a pending session's cookies, as clerk-js leaves them."""
    make_user("user_task", first_name="Ada")
    now = int(time.time())
    client.set_cookie("__session", tokens.mint("user_task", sid="sess_task", sts="pending", iat=now))
    client.set_cookie("__client_uat", str(now - 10))
    return client


def test_the_verifier_refuses_a_pending_session_and_says_so(tokens):
    verifier = clerk_tokens.SessionVerifier(pem_key=tokens.public_pem, issuer=TEST_ISSUER)
    with pytest.raises(clerk_tokens.PendingSession) as refused:
        verifier.verify(tokens.mint(sts="pending"))
    assert refused.value.reason == clerk_tokens.PENDING
    assert isinstance(refused.value, clerk_tokens.InvalidToken)  # not a signed-in session, whoever asks
    with pytest.raises(clerk_tokens.InvalidToken) as other:
        verifier.verify(tokens.mint(sts="pending", iss="https://evil.example"))
    assert not isinstance(other.value, clerk_tokens.PendingSession)  # only a genuine token is "pending"


def test_a_page_goes_to_sign_in_and_back_to_where_it_was(pending):
    response = pending.get("/orders?page=2", headers=PAGE)
    assert response.status_code == 303
    assert response.headers["Cache-Control"] == "no-store"
    target = urlsplit(response.headers["Location"])
    assert target.path == "/sign-in"
    assert parse_qs(target.query) == {"next": ["/orders?page=2"]}
    sign_in = pending.get(response.headers["Location"], headers=PAGE)
    page = sign_in.get_data(as_text=True)
    assert sign_in.status_code == 200  # not signed in, so not sent on: Clerk's component shows the task
    assert 'data-redirect="/orders?page=2"' in page  # where Clerk's component returns once it is done
    assert page.count(html.escape(PENDING_TASK)) == 1


def test_a_public_page_goes_to_sign_in_too(pending):
    response = pending.get("/", headers=PAGE)
    assert (response.status_code, response.headers["Location"]) == (303, "/sign-in?next=/")


def test_sign_in_and_sign_out_are_served_not_redirected(pending):
    assert pending.get("/sign-in?next=/cart", headers=PAGE).status_code == 200
    assert pending.get("/sign-out", headers=PAGE).status_code == 200


def test_the_api_answers_401_json(pending, client, tokens):
    response = pending.get("/api/me")
    assert (response.status_code, response.json) == (401, {"error": PENDING_TASK})
    assert pending.get("/api/orders", headers=PAGE).status_code == 401  # /api/… is never redirected
    bearer = client.application.test_client().get(
        "/api/me", headers={"Authorization": f"Bearer {tokens.mint('user_task', sts='pending')}"}
    )
    assert bearer.status_code == 401 and "Location" not in bearer.headers


def test_a_form_post_is_not_redirected_by_the_hook(pending):
    """Not a navigation Clerk would redirect: served signed out, so the form's own rule sends the
    shopper through sign-in back to the page the form was on (not to the POST's address)."""
    token = csrf_token(pending.application, pending)
    response = pending.post("/cart/items/1/remove", data={"csrf_token": token}, headers=PAGE)
    assert (response.status_code, response.headers["Location"]) == (302, "/sign-in?next=/cart")


def test_once_the_task_is_done_the_shopper_is_signed_in(pending, tokens):
    assert pending.get("/orders", headers=PAGE).status_code == 303
    now = int(time.time())
    pending.set_cookie("__session", tokens.mint("user_task", sid="sess_task", sts="active", iat=now))
    assert pending.get("/orders", headers=PAGE).status_code == 200
    assert pending.get("/api/me").json["first_name"] == "Ada"
