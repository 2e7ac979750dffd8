"""The admin dashboard's mirror-health panel: each figure from the database, with what to do."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape as html_unescape

import pytest
from sqlalchemy import text, update

from shop.extensions import db
from shop.models import Role, SyncRun, User
from tests.support import clerk_user, event, signed_headers


@pytest.fixture
def staff(app, sign_in):
    staff = app.test_client()
    sign_in("user_admin", as_client=staff, role=Role.ADMIN, email="admin@example.com")
    return staff


def panel(client) -> dict[str, str]:
    """Each figure's text (tags stripped, spaces collapsed) by its title."""
    response = client.get("/admin/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    section = html[html.index('data-testid="mirror-health"') :]
    cards = re.findall(r'<div class="stat( stat-warn)?" data-testid="health-\d">(.*?)</div>', section, re.S)
    found = {}
    for warn, card in cards:
        words = html_unescape(" ".join(re.sub(r"<[^>]+>", " ", card).split()))
        title = next(t for t in TITLES if words.startswith(t))
        found[title] = ("WARN " if warn else "") + words[len(title) :].strip()
    return found


TITLES = ("Last Clerk webhook", "Failed webhook events", "First sign-ins in 24 h", "Last sync with Clerk")


def test_a_quiet_shop_asks_for_a_scheduled_sync(staff):
    figures = panel(staff)
    assert figures["Last Clerk webhook"].startswith("never")
    assert figures["Failed webhook events"].startswith("0")
    assert figures["First sign-ins in 24 h"].startswith("0")
    assert figures["Last sync with Clerk"].startswith("WARN never")
    assert "deploy/ has a systemd timer and a Kubernetes CronJob" in figures["Last sync with Clerk"]


def test_each_figure_after_webhooks_provisionings_and_a_sync(app, client, staff):
    body = json.dumps(event("user.created", clerk_user("user_hooked", email="hooked@example.com")))
    assert client.post("/api/webhooks/clerk", data=body, headers=signed_headers(body)).status_code == 200
    bad = json.dumps(event("user.created", {"id": "not a user"}))
    assert client.post("/api/webhooks/clerk", data=bad, headers=signed_headers(bad)).status_code == 400
    with app.app_context():
        db.session.execute(update(User).where(User.clerk_id == "user_hooked").values(provisioned_at=text("now()")))
        db.session.add(SyncRun(started_at=datetime.now(UTC), ok=True, created=2, updated=1, tombstoned=0, listed=3))
        db.session.commit()

    figures = panel(staff)
    assert figures["Last Clerk webhook"].startswith("just now")
    assert figures["Failed webhook events"].startswith("WARN 1")
    assert "flask webhooks replay --failed" in figures["Failed webhook events"]
    assert figures["First sign-ins in 24 h"].startswith("1 ")
    assert figures["Last sync with Clerk"].startswith("WARN just now")
    assert "repaired 2 missing, 1 stale, 0 gone" in figures["Last sync with Clerk"]
    html = staff.get("/admin/").get_data(as_text=True)
    assert "hooked@example.com" not in html  # figures only, no personal data


def test_webhooks_quiet_while_users_sign_in_first_is_flagged(app, staff):
    with app.app_context():
        db.session.execute(
            text(
                "INSERT INTO webhook_events (source, svix_id, type, status, created_at)"
                " VALUES ('clerk', 'msg_old', 'user.created', 'processed', now() - interval '2 days')"
            )
        )
        db.session.execute(update(User).where(User.clerk_id == "user_admin").values(provisioned_at=text("now()")))
        db.session.add(
            SyncRun(started_at=datetime.now(UTC) - timedelta(hours=3), ok=False, failed=4, error="Clerk answered 401")
        )
        db.session.commit()
    figures = panel(staff)
    assert figures["Last Clerk webhook"].startswith("WARN 2 days ago")
    assert "check the endpoint in Clerk's dashboard" in figures["Last Clerk webhook"]
    assert "replay missed messages from Svix's portal" in figures["Last Clerk webhook"]
    assert figures["First sign-ins in 24 h"].startswith("WARN 1")
    assert figures["Last sync with Clerk"].startswith("WARN failed")
    assert "Clerk answered 401" in figures["Last sync with Clerk"]


def test_the_panel_is_for_staff_only(client, sign_in):
    sign_in("user_shopper")
    assert client.get("/admin/").status_code in (403, 404)
