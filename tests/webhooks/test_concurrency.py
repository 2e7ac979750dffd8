"""Deliveries that arrive at the same moment, over real HTTP to a threaded server."""

import json
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import requests
from sqlalchemy import func, select

from shop.extensions import db
from shop.models import User, WebhookEvent
from tests.support import clerk_user, event, live_server, signed_headers


def post_together(url, deliveries):
    """POST every (body, headers) at once: all threads wait on a barrier, then send."""
    barrier = Barrier(len(deliveries))

    def send(delivery):
        body, headers = delivery
        barrier.wait()
        return requests.post(f"{url}/api/webhooks/clerk", data=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(len(deliveries)) as pool:
        return list(pool.map(send, deliveries))


def test_twenty_identical_deliveries_have_one_effect(app):
    body = json.dumps(event("user.created", clerk_user("user_race", email="race@example.com")))
    headers = signed_headers(body, svix_id="msg_race")
    with live_server(app) as url:
        responses = post_together(url, [(body, headers)] * 20)
    statuses = sorted(r.json()["status"] for r in responses)
    assert all(r.status_code == 200 for r in responses)
    assert statuses == ["duplicate"] * 19 + ["processed"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 1
        assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_concurrent_claims_of_one_email_leave_it_unique(app):
    deliveries = []
    for index in range(10):
        body = json.dumps(event("user.created", clerk_user(f"user_{index}", email="Same@Example.com")))
        deliveries.append((body, signed_headers(body)))
    with live_server(app) as url:
        responses = post_together(url, deliveries)
    assert [r.status_code for r in responses] == [200] * 10
    with app.app_context():
        holders = db.session.scalars(select(User).where(func.lower(User.email) == "same@example.com")).all()
        assert len(holders) == 1
        assert db.session.scalar(select(func.count()).select_from(User)) == 10
        flagged = db.session.scalar(select(func.count()).select_from(User).where(User.needs_resync))
        assert flagged == 9


def test_create_and_delete_racing_end_in_a_tombstone(app):
    from tests.support import deleted_event

    for index in range(5):
        user_id = f"user_pair{index}"
        deliveries = []
        for payload in (event("user.created", clerk_user(user_id)), deleted_event(user_id)):
            body = json.dumps(payload)
            deliveries.append((body, signed_headers(body)))
        with live_server(app) as url:
            assert [r.status_code for r in post_together(url, deliveries)] == [200, 200]
        with app.app_context():
            row = db.session.scalar(select(User).where(User.clerk_id == user_id))
            assert row.deleted_at is not None
