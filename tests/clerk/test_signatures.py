"""Svix signatures: the published vectors, and shop.clerk.signatures.verify on raw bytes."""

from datetime import UTC, datetime, timedelta

import pytest
from svix.webhooks import Webhook

from shop.clerk import signatures
from tests.support import OTHER_WEBHOOK_SECRET, WEBHOOK_SECRET, signed_headers, vector

SVIX = vector("svix_signature_vectors.json")


@pytest.mark.parametrize("case", SVIX["vectors"], ids=lambda case: case["name"][:40])
def test_published_vectors_sign_as_expected(case):
    timestamp = datetime.fromtimestamp(int(case["timestamp"]), tz=UTC)
    assert Webhook(case["secret"]).sign(case["msg_id"], timestamp, case["payload"]) == case["expected_signature_header"]


def test_published_vector_is_refused_as_too_old():
    case = SVIX["vectors"][0]
    with pytest.raises(signatures.InvalidSignature):
        signatures.verify(case["payload"].encode(), case["headers"], [case["secret"]])


def test_fresh_delivery_verifies_and_returns_svix_id():
    body = b'{"type": "user.created"}'
    headers = signed_headers(body, svix_id="msg_1")
    assert signatures.verify(body, headers, [WEBHOOK_SECRET]) == "msg_1"


def test_any_matching_signature_in_the_list_is_enough():
    body = b"{}"
    headers = signed_headers(body)
    decoys = " ".join(SVIX["negative_examples"]["multi_signature_decoys"])
    headers["svix-signature"] = f"{decoys} {headers['svix-signature']}"
    assert signatures.verify(body, headers, [WEBHOOK_SECRET])


def test_rotation_accepts_either_secret():
    body = b"{}"
    for secret in (WEBHOOK_SECRET, OTHER_WEBHOOK_SECRET):
        assert signatures.verify(body, signed_headers(body, secret=secret), [OTHER_WEBHOOK_SECRET, WEBHOOK_SECRET])


def test_raw_bytes_are_verified_not_reserialized_json():
    body = b'{"b": 1,   "a": 2}'
    headers = signed_headers(body)
    with pytest.raises(signatures.InvalidSignature):
        signatures.verify(b'{"b":1,"a":2}', headers, [WEBHOOK_SECRET])


@pytest.mark.parametrize("signature", ["garbage", "v1,", "v1,!!!", "v1,a,b", "", "v2,abc"])
def test_malformed_signature_headers(signature):
    body = b"{}"
    headers = {**signed_headers(body), "svix-signature": signature}
    with pytest.raises((signatures.InvalidSignature, signatures.MissingHeaders)):
        signatures.verify(body, headers, [WEBHOOK_SECRET])


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_timestamps_outside_five_minutes(offset):
    body = b"{}"
    headers = signed_headers(body, timestamp=datetime.now(UTC) + offset)
    with pytest.raises(signatures.InvalidSignature):
        signatures.verify(body, headers, [WEBHOOK_SECRET])


def test_body_that_is_not_utf8():
    body = b"\xff\xfe{}"
    headers = signed_headers(b"{}")
    with pytest.raises(signatures.InvalidSignature):
        signatures.verify(body, headers, [WEBHOOK_SECRET])
