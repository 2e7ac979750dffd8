"""The local Clerk stand-in's `user.updateMetadata`: Clerk's PATCH /v1/me/metadata (a deep merge into the
signed-in user's unsafe_metadata), then a signed `user.updated` over real HTTP, as `make run` uses it."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from shop.extensions import db
from shop.models import User, WebhookEvent
from tests.support import live_server, wait_for


@pytest.fixture
def standin_app(make_app, tmp_path):
    return make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))


@pytest.fixture
def signed_in(standin_app):
    """A live server and a browser-like session signed in as Ada through the stand-in: (url, session, clerk_id)."""
    with live_server(standin_app) as url:
        browser = requests.Session()
        answer = browser.post(f"{url}/dev-clerk/sign-in", json={"email": "ada@example.com", "first_name": "Ada"})
        assert answer.status_code == 200
        clerk_id = answer.json()["user"]["id"]
        wait_for(lambda: mirrored(standin_app, clerk_id), what="Ada's user.created mirrored")
        yield url, browser, clerk_id


def mirrored(app, clerk_id: str) -> User | None:
    with app.app_context():
        db.session.expire_all()
        return db.session.scalar(select(User).where(User.clerk_id == clerk_id))


def updated_events(app, clerk_id: str) -> list[WebhookEvent]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(WebhookEvent)
                .where(WebhookEvent.clerk_user_id == clerk_id, WebhookEvent.type == "user.updated")
                .order_by(WebhookEvent.id)
            )
        )


def processed_updates(app, clerk_id: str, count: int) -> list[WebhookEvent] | None:
    """The user's `user.updated` deliveries once `count` of them are processed (signature verified), else None."""
    events = updated_events(app, clerk_id)
    return events if len(events) == count and all(e.status == "processed" for e in events) else None


def backend_user(app, url: str, clerk_id: str) -> dict:
    secret = app.config["STANDIN_SECRET_KEY"]
    answer = requests.get(
        f"{url}/dev-clerk/v1/users/{clerk_id}", headers={"Authorization": f"Bearer {secret}"}, timeout=10
    )
    assert answer.status_code == 200
    return answer.json()


def test_update_metadata_deep_merges_and_delivers_a_signed_user_updated(standin_app, signed_in):
    url, browser, clerk_id = signed_in
    first = browser.patch(
        f"{url}/dev-clerk/me/metadata",
        json={"unsafe_metadata": {"marketing_opt_in": True, "prefs": {"theme": "dark", "size": "M"}, "tags": [1, 2]}},
    )
    assert first.status_code == 200
    assert first.json()["user"]["unsafeMetadata"] == {
        "marketing_opt_in": True,
        "prefs": {"theme": "dark", "size": "M"},
        "tags": [1, 2],
    }
    # Deep: a nested object merges key by key, null removes a key, an array is replaced whole, the rest stays.
    second = browser.patch(
        f"{url}/dev-clerk/me/metadata", json={"unsafe_metadata": {"prefs": {"size": None, "lang": "fr"}, "tags": [3]}}
    )
    merged = {"marketing_opt_in": True, "prefs": {"theme": "dark", "lang": "fr"}, "tags": [3]}
    assert second.status_code == 200 and second.json()["user"]["unsafeMetadata"] == merged

    # Clerk keeps it: the Backend API answers it (the other two untouched), with a newer updated_at.
    stored = backend_user(standin_app, url, clerk_id)
    assert stored["unsafe_metadata"] == merged
    assert stored["public_metadata"] == {} and stored["private_metadata"] == {}
    assert stored["updated_at"] > stored["created_at"]

    # And tells the shop: two user.updated, signed (the endpoint processed them), carrying the merged
    # object and, as Clerk's webhooks do, private_metadata null.
    events = wait_for(lambda: processed_updates(standin_app, clerk_id, 2), what="two signed user.updated processed")
    last = max(events, key=lambda e: e.payload["data"]["updated_at"])
    assert last.payload["data"]["unsafe_metadata"] == merged
    assert all(e.payload["data"]["private_metadata"] is None for e in events)
    assert len({e.svix_id for e in events}) == 2

    # Into the mirror (users.marketing_opt_in comes from unsafe_metadata.marketing_opt_in being true).
    wait_for(lambda: mirrored(standin_app, clerk_id).marketing_opt_in is True, what="the opt-in mirrored")
    browser.patch(f"{url}/dev-clerk/me/metadata", json={"unsafe_metadata": {"marketing_opt_in": False}})
    wait_for(lambda: mirrored(standin_app, clerk_id).marketing_opt_in is False, what="the opt-out mirrored")
    assert backend_user(standin_app, url, clerk_id)["unsafe_metadata"]["prefs"] == {"theme": "dark", "lang": "fr"}


def test_update_metadata_refuses_what_a_browser_may_not_do(standin_app, signed_in):
    url, browser, clerk_id = signed_in
    patch = f"{url}/dev-clerk/me/metadata"

    # Only unsafe_metadata: public and private metadata are written by a backend only.
    for field in ("public_metadata", "private_metadata"):
        answer = browser.patch(patch, json={field: {"role": "ADMIN"}})
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["code"] == "form_param_unknown"
    for body in ({"unsafe_metadata": "yes"}, {"unsafe_metadata": [1]}, {}, [1]):
        answer = browser.patch(patch, json=body)
        assert answer.status_code == 422, body
        assert answer.json()["errors"][0]["meta"]["param_name"] == "unsafe_metadata"
    # Clerk's 8 KB cap on the merged object.
    too_big = browser.patch(patch, json={"unsafe_metadata": {"note": "x" * 8200}})
    assert too_big.status_code == 422
    # JSON only (the blueprint is CSRF-exempt: a cross-site form cannot send JSON without CORS).
    assert browser.patch(patch, data="unsafe_metadata=%7B%7D").status_code == 415
    # Signed out: nobody's metadata.
    assert requests.patch(patch, json={"unsafe_metadata": {"marketing_opt_in": True}}, timeout=10).status_code == 401

    stored = backend_user(standin_app, url, clerk_id)
    assert stored["unsafe_metadata"] == {} and stored["public_metadata"] == {}

    # None of those told the shop anything: after one accepted change, its user.updated is the only one.
    assert browser.patch(patch, json={"unsafe_metadata": {"marketing_opt_in": True}}).status_code == 200
    (only,) = wait_for(lambda: processed_updates(standin_app, clerk_id, 1), what="the accepted change's user.updated")
    assert only.payload["data"]["unsafe_metadata"] == {"marketing_opt_in": True}
