"""A webhook body signed correctly but nested 100,000 deep: 400 (not JSON this shop reads), never a
500. Python's json raises RecursionError past about a thousand levels, which is no ValueError, so a
parser that only expects ValueError answers such a body with a traceback. Both webhooks are signed as
their senders sign (Stripe's scheme; Svix's), so the body gets past the signature to the parser.
"""

from __future__ import annotations

import logging

import pytest
from flask.testing import FlaskClient

from tests.payments.support import stripe_headers
from tests.support import signed_headers

DEPTH = 100_000
BODIES = {
    "arrays": "[" * DEPTH + "]" * DEPTH,
    "objects": '{"a":' * DEPTH + "1" + "}" * DEPTH,
    "inside an event": '{"object": "event", "id": "evt_deep", "type": "user.created", "data": '
    + "[" * DEPTH
    + "]" * DEPTH
    + "}",
}


@pytest.fixture(autouse=True)
def nothing_at_error(caplog):
    """A sender's bad body is the sender's fault: nothing for an operator's alert (ERROR) to wake up for."""
    caplog.set_level(logging.INFO)
    yield
    assert [r.getMessage()[:300] for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("shape", BODIES)
def test_a_stripe_event_100000_deep_is_400(client: FlaskClient, shape: str):
    body = BODIES[shape]
    response = client.post("/api/webhooks/stripe", data=body.encode(), headers=stripe_headers(body))
    assert response.status_code == 400


@pytest.mark.parametrize("shape", BODIES)
def test_a_clerk_event_100000_deep_is_400(client: FlaskClient, shape: str):
    body = BODIES[shape]
    response = client.post("/api/webhooks/clerk", data=body.encode(), headers=signed_headers(body))
    assert response.status_code == 400
