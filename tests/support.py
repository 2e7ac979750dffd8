"""Helpers shared by the tests: Clerk-shaped payloads, Svix signing, a live server, polling a condition."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from sqlalchemy.engine import make_url
from svix.webhooks import Webhook
from werkzeug.serving import make_server

VECTORS = Path(__file__).parent / "vectors"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_WEBHOOK_SECRET = "whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldCBrZXkh"
T = TypeVar("T")


def vector(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def clerk_user(
    clerk_id: str,
    *,
    email: str | None = None,
    updated_at: int = 1_700_000_000_000,
    first_name: str | None = "Ada",
    last_name: str | None = "Lovelace",
    **extra: Any,
) -> dict[str, Any]:
    """A Clerk User as the Backend API and webhooks send it."""
    addresses = []
    if email:
        addresses = [
            {"id": "idn_other", "email_address": f"secondary-{email}", "object": "email_address"},
            {"id": f"idn_{clerk_id}", "email_address": email, "object": "email_address"},
        ]
    return {
        "object": "user",
        "id": clerk_id,
        "email_addresses": addresses,
        "primary_email_address_id": f"idn_{clerk_id}" if email else None,
        "first_name": first_name,
        "last_name": last_name,
        "image_url": f"https://img.clerk.com/{clerk_id}",
        "public_metadata": {},
        "private_metadata": None,
        "unsafe_metadata": {},
        "created_at": 1_600_000_000_000,
        "updated_at": updated_at,
        **extra,
    }


def event(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"object": "event", "type": kind, "data": data, "timestamp": 1_700_000_000_000, "instance_id": "ins_test"}


def deleted_event(clerk_id: str) -> dict[str, Any]:
    return event("user.deleted", {"object": "user", "id": clerk_id, "deleted": True})


def signed_headers(
    body: str | bytes,
    *,
    svix_id: str | None = None,
    secret: str = WEBHOOK_SECRET,
    timestamp: datetime | None = None,
) -> dict[str, str]:
    """Headers exactly as Svix sends them, signed by svix's own Webhook.sign."""
    svix_id = svix_id or f"msg_{uuid.uuid4().hex}"
    timestamp = timestamp or datetime.now(UTC)
    text = body.decode() if isinstance(body, bytes) else body
    return {
        "svix-id": svix_id,
        "svix-timestamp": str(int(timestamp.timestamp())),
        "svix-signature": Webhook(secret).sign(svix_id, timestamp, text),
        "content-type": "application/json",
    }


@contextmanager
def live_server(app) -> Iterator[str]:
    """The app on a real threaded HTTP server on 127.0.0.1; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # shutdown() waits for the loop's next poll: at the default 0.5 s, a quarter of the suite's
    # tests spent half a second each in teardown.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


# --- session tokens -------------------------------------------------------------------------------------

TEST_FRONTEND_API = "clerk.shop.test"
TEST_PUBLISHABLE_KEY = "pk_test_Y2xlcmsuc2hvcC50ZXN0JA"  # base64("clerk.shop.test$")
TEST_ISSUER = f"https://{TEST_FRONTEND_API}"
TEST_KID = "ins_test"


class TokenMinter:
    """An RSA key made for the test run, and RS256 session tokens shaped like Clerk's (v2 claims)."""

    def __init__(self, kid: str = TEST_KID):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def jwk(self) -> dict[str, Any]:
        import jwt

        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def claims(self, sub: str = "user_shopper", **overrides: Any) -> dict[str, Any]:
        import time

        now = int(time.time())
        claims = {
            "sub": sub,
            "sid": "sess_test",
            "iss": TEST_ISSUER,
            "iat": now,
            "nbf": now - 10,
            "exp": now + 60,
            "v": 2,
            "azp": "http://localhost",
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def mint(self, sub: str = "user_shopper", *, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
        import jwt

        return jwt.encode(
            self.claims(sub, **overrides),
            self.private_key,
            algorithm="RS256",
            headers={"kid": self.kid, **(headers or {})},
        )


def csrf_token(app, client) -> str:
    """A valid CSRF form token for `client`'s session, without needing a page that has a form."""
    from flask import session
    from flask_wtf.csrf import generate_csrf

    with app.test_request_context():
        token = generate_csrf()
        raw = session["csrf_token"]
    with client.session_transaction() as client_session:
        client_session["csrf_token"] = raw
    return token


def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float = 10.0,
    what: str | Callable[[], str] = "the condition",
    interval: float = 0.02,
    pause: Callable[[float], object] = time.sleep,
) -> T:
    """Poll a real condition (an event delivered, an e-mail received, a worker replaced) until it
    returns something true, and return that: no fixed sleep orders anything. After `timeout` seconds,
    AssertionError naming `what` (a callable: asked then, to describe the state it timed out in).
    `pause(seconds)` waits between polls: a Playwright page's wait, say, which keeps its events flowing."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        pause(interval)


def libpq(database_url: str) -> str:
    """A SQLAlchemy URL as psycopg takes it (no driver name), password kept."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def wait_for_a_lock_wait(database_url: str, timeout: float = 10) -> None:
    """Return once some session of the database waits on a lock: a concurrent statement has
    reached the point the test wants it held at. Polls PostgreSQL itself instead of sleeping."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        wait_for(
            lambda: conn.execute(query).fetchone()[0],  # type: ignore[index]
            timeout=timeout,
            what="a session to start waiting on a lock",
            interval=0.01,
        )


# The checkout's "new address" fields, as a shopper fills them in.
NEW_ADDRESS = {
    "address_id": "new",
    "new-name": "Ada Lovelace",
    "new-line1": "12 Rue de la Paix",
    "new-postal_code": "75002",
    "new-city": "Paris",
    "new-country": "FR",
}
