"""The floor a Clerk webhook delivery could reach: a minimal raw-SQL handler, for bench/webhooks.py --floor.

What a delivery must do and nothing more: svix's verification of the raw bytes, the JSON parsed, the
event's row inserted (a duplicate answers `duplicate`) and the user upserted (only a newer `updated_at`
writes, the e-mail with its key), in one transaction, with raw psycopg on one connection per worker
thread, kept open (no pool, no pre-ping). No Flask, no SQLAlchemy, no logging of its own. Run by gunicorn
with the shop's own gunicorn.conf.py (`gunicorn -c gunicorn.conf.py bench.floor_app:app`), on a database
migrated like the shop's, so the shop's handler and this one meet the same server settings, tables and
indexes. Not a product: it skips every rule but these (e-mail hand-over, tombstones, user.deleted).
"""

from __future__ import annotations

import json
import os
import threading
import unicodedata

import psycopg
from svix.webhooks import Webhook

_webhook = Webhook(os.environ["CLERK_WEBHOOK_SECRET"])
_local = threading.local()

_CLAIM = """
INSERT INTO webhook_events (source, svix_id, type, clerk_user_id, status, payload, processed_at)
VALUES ('clerk', %s, %s, %s, 'processed', %s, now())
ON CONFLICT ON CONSTRAINT uq_webhook_events_source_svix_id DO NOTHING
RETURNING id
"""
_UPSERT = """
INSERT INTO users (clerk_id, email, email_key, first_name, last_name, image_url, clerk_updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (clerk_id) DO UPDATE SET
    email = excluded.email, email_key = excluded.email_key, first_name = excluded.first_name,
    last_name = excluded.last_name, image_url = excluded.image_url,
    clerk_updated_at = excluded.clerk_updated_at, updated_at = now()
WHERE users.clerk_updated_at < excluded.clerk_updated_at
"""


def _connection() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(os.environ["FLOOR_DATABASE_URL"])
    return conn


def _answer(start_response, status: str, body: bytes):
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "GET":  # gunicorn's start-up check (bench.harness.start_gunicorn)
        return _answer(start_response, "200 OK", b'{"status":"ok"}')
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length)
    headers = {
        "svix-id": environ.get("HTTP_SVIX_ID", ""),
        "svix-timestamp": environ.get("HTTP_SVIX_TIMESTAMP", ""),
        "svix-signature": environ.get("HTTP_SVIX_SIGNATURE", ""),
    }
    try:
        _webhook.verify(raw, headers)
    except Exception:  # any failure to verify refuses
        return _answer(start_response, "400 Bad Request", b'{"error":"Invalid signature"}')
    event = json.loads(raw)
    user = event["data"]
    primary = next(a["email_address"] for a in user["email_addresses"] if a["id"] == user["primary_email_address_id"])
    key = unicodedata.normalize("NFKC", primary.lower())
    conn = _connection()
    with conn.transaction():
        claimed = conn.execute(
            _CLAIM, (headers["svix-id"], event["type"], user["id"], psycopg.types.json.Jsonb(event))
        ).fetchone()
        if claimed is None:
            return _answer(start_response, "200 OK", b'{"status":"duplicate"}')
        conn.execute(
            _UPSERT,
            (
                user["id"],
                primary,
                key,
                user.get("first_name"),
                user.get("last_name"),
                user.get("image_url"),
                user["updated_at"],
            ),
        )
    return _answer(start_response, "200 OK", b'{"status":"processed"}')
