"""Well-signed deliveries whose JSON is pathological: 400 and recorded as failed, never a 500.

Bodies are signed with svix's own Webhook.sign (tests/support.py), so each reaches the JSON stage.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from shop.extensions import db
from shop.models import Role, User, WebhookEvent
from shop.payloads import MAX_DEPTH
from tests.support import clerk_user, event, signed_headers

URL = "/api/webhooks/clerk"


def post(client, body: str, svix_id: str | None = None):
    return client.post(URL, data=body.encode(), headers=signed_headers(body, svix_id=svix_id))


def recorded(app, svix_id: str) -> WebhookEvent | None:
    with app.app_context():
        return db.session.scalar(select(WebhookEvent).where(WebhookEvent.svix_id == svix_id))


def user_row(app, clerk_id: str) -> User | None:
    with app.app_context():
        return db.session.scalar(select(User).where(User.clerk_id == clerk_id))


@pytest.fixture(autouse=True)
def nothing_at_error(caplog):
    caplog.set_level(logging.INFO)
    yield
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_hundred_thousand_levels_is_400_and_recorded(app, client):
    body = '{"type": "user.created", "data": ' + nested(100_000) + "}"
    response = post(client, body, svix_id="msg_deep")
    assert (response.status_code, response.json) == (400, {"error": "Body is not JSON"})
    logged = recorded(app, "msg_deep")
    assert (logged.status, logged.payload) == ("failed", None)


def test_nesting_up_to_the_limit_is_processed_one_more_is_refused(app, client, sign_in):
    def with_metadata(depth: int, clerk_id: str) -> str:
        # The envelope, data, unsafe_metadata are three levels; the metadata's value brings the rest.
        metadata = json.loads(nested(depth - 3))
        return json.dumps(event("user.created", clerk_user(clerk_id, unsafe_metadata={"deep": metadata})))

    assert post(client, with_metadata(MAX_DEPTH, "user_deep_ok"), svix_id="msg_deep_ok").json == {"status": "processed"}
    assert user_row(app, "user_deep_ok") is not None
    sign_in("user_admin", role=Role.ADMIN)  # the staff's page of that event shows it, indented
    assert client.get(f"/admin/webhooks/{recorded(app, 'msg_deep_ok').id}").status_code == 200
    response = post(client, with_metadata(MAX_DEPTH + 1, "user_too_deep"))
    assert response.status_code == 400
    assert user_row(app, "user_too_deep") is None


def test_a_lone_surrogate_is_400_and_recorded_with_a_replacement_character(app, client):
    body = json.dumps(event("user.created", clerk_user("user_surrogate", first_name="Ada\ud800")))  # "\ud800" escape
    assert "\\ud800" in body
    response = post(client, body, svix_id="msg_surrogate")
    assert response.status_code == 400
    assert response.json["error"].startswith("Not a Clerk event: the body has text that cannot be stored")
    logged = recorded(app, "msg_surrogate")
    assert logged.status == "failed"
    assert logged.payload["data"]["first_name"] == "Ada\ufffd"
    assert logged.type == "user.created"
    assert user_row(app, "user_surrogate") is None


def test_a_lone_surrogate_in_the_type_and_a_nul_in_a_key_are_recorded(app, client):
    payload = event("user.\udc00created", clerk_user("user_nul", unsafe_metadata={"k\u0000": "v\u0000"}))
    response = post(client, json.dumps(payload), svix_id="msg_nul_key")
    assert response.status_code == 400
    logged = recorded(app, "msg_nul_key")
    assert logged.status == "failed"
    assert logged.type == "user.\ufffdcreated"
    assert logged.payload["data"]["unsafe_metadata"] == {"k\ufffd": "v\ufffd"}


def test_a_nul_in_the_user_is_400(app, client):
    body = json.dumps(event("user.created", clerk_user("user_a", first_name="nul\u0000byte")))
    response = post(client, body, svix_id="msg_nul")
    assert response.status_code == 400
    assert recorded(app, "msg_nul").payload["data"]["first_name"] == "nul\ufffdbyte"
    assert user_row(app, "user_a") is None


def test_the_literal_text_backslash_u0000_is_a_name_like_any_other(app, client):
    """Six characters, \\u0000, escaped in JSON as "\\\\u0000": storable, so processed."""
    body = json.dumps(event("user.created", clerk_user("user_literal", first_name="\\u0000")))
    assert '"\\\\u0000"' in body
    assert post(client, body, svix_id="msg_literal").json == {"status": "processed"}
    assert user_row(app, "user_literal").first_name == "\\u0000"
    assert recorded(app, "msg_literal").payload["data"]["first_name"] == "\\u0000"


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "1" * 5000])
def test_numbers_json_or_postgresql_cannot_hold_are_400(app, client, number):
    body = '{"type": "user.created", "data": {"id": "user_n", "updated_at": ' + number + "}}"
    assert post(client, body).status_code == 400


# --- property: any signed body -------------------------------------------------------------------------

TEXT = st.text(max_size=20)  # every code point but surrogates (svix signs text)
SURROGATE_TEXT = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.characters(), max_size=8)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | SURROGATE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SURROGATE_TEXT, inner, max_size=4),
    max_leaves=20,
)
USER_FIELD = st.sampled_from(
    ["id", "updated_at", "first_name", "last_name", "image_url", "primary_email_address_id", "email_addresses"]
)


@st.composite
def clerk_like_payload(draw) -> str:
    """A Clerk-shaped event with some of its fields replaced by arbitrary JSON, serialised either way."""
    kind = draw(st.sampled_from(["user.created", "user.updated", "user.deleted", "session.created"]) | TEXT)
    user = clerk_user(
        draw(st.sampled_from(["user_prop", "user_" + "x" * 70])), email=draw(st.sampled_from([None, "p@example.com"]))
    )
    for field in draw(st.lists(USER_FIELD, max_size=3)):
        user[field] = draw(JSON)
    payload = event(kind, user) if draw(st.booleans()) else draw(JSON)
    text = json.dumps(payload, ensure_ascii=draw(st.booleans()))
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate cannot travel as UTF-8: only as a \ud800 escape
        text = json.dumps(payload, ensure_ascii=True)
    return text


def shapes_of_json_text():
    return (
        clerk_like_payload()
        | TEXT
        | st.integers(1, 5_000).map(lambda depth: '{"type": "user.created", "data": ' + nested(depth) + "}")
        | st.builds(lambda depth, tail: "[" * depth + tail, st.integers(0, 3_000), TEXT)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=shapes_of_json_text())
def test_any_signed_body_is_200_or_400_never_500(client, caplog, body):
    caplog.clear()
    svix_id = f"msg_{uuid.uuid4().hex}"
    response = post(client, body, svix_id=svix_id)
    assert response.status_code in (200, 400), (response.status_code, body[:200])
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
