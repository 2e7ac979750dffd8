"""Staff: the webhook history (latest, by status), one event's payload, replaying a failed one."""

from __future__ import annotations

import json

from flask import abort, flash, redirect, render_template, request, url_for

from shop.admin import bp
from shop.auth.decorators import admin_required
from shop.extensions import db
from shop.models import WebhookEvent, WebhookStatus
from shop.webhooks import history
from shop.webhooks.inbox import OUTCOMES, replay, sources

LIMIT = 50


@bp.get("/webhooks")
@admin_required
def webhooks_list():
    status = request.args.get("status") or None
    if status is not None and status not in {s.value for s in WebhookStatus}:
        status = None
    source = request.args.get("source") or None
    if source not in sources():
        source = None
    events = history.latest(limit=LIMIT, status=status, source=source)
    return render_template(
        "admin/webhooks.html",
        events=events,
        status=status,
        statuses=list(WebhookStatus),
        source=source,
        sources=sources(),
        limit=LIMIT,
    )


@bp.get("/webhooks/<id:event_id>")
@admin_required
def webhook_detail(event_id: int):
    event = db.session.get(WebhookEvent, event_id)
    if event is None:
        abort(404)
    payload = json.dumps(event.payload, indent=2, sort_keys=True, ensure_ascii=False)
    return render_template("admin/webhook.html", event=event, payload=payload)


@bp.post("/webhooks/<id:event_id>/replay")
@admin_required
def webhook_replay(event_id: int):
    event = db.session.get(WebhookEvent, event_id)
    if event is None:
        abort(404)
    if event.status != WebhookStatus.FAILED:
        flash(f"Only failed events are replayed here; this one is {event.status}.", "error")
        return redirect(url_for("admin.webhook_detail", event_id=event_id))
    source, svix_id, payload = event.source, event.svix_id, event.payload
    db.session.rollback()  # replay owns its transactions, as in `flask webhooks replay`
    result = replay(source, svix_id, payload)
    if result in OUTCOMES:
        flash(f"Replayed {svix_id}: {result}.", "success")
    else:
        flash(f"Replay of {svix_id} {result}", "error")
    return redirect(url_for("admin.webhook_detail", event_id=event_id))
