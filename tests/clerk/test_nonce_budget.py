"""shop.clerk.handshake.NonceBudget: the per-process cap on handshake-nonce look-ups (a sliding window
shared by threads), and shop.clerk.handshake.authenticate honouring it."""

from __future__ import annotations

import logging
import threading

from shop.clerk import handshake, request_auth, tokens
from shop.clerk.api import ClerkAPIError
from tests.conftest import TOKENS
from tests.support import TEST_FRONTEND_API, TEST_ISSUER

VERIFIER = tokens.SessionVerifier(pem_key=TOKENS.public_pem, issuer=TEST_ISSUER)
PROD = request_auth.Instance(TEST_FRONTEND_API, "suffix01", production=True)
PAGE = {"Accept": "text/html", "Sec-Fetch-Dest": "document"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_slides():
    clock = Clock()
    budget = handshake.NonceBudget(3, 10.0, clock=clock)
    assert all(budget.take() is not None for _ in range(3))
    assert budget.take() is None
    clock.now += 5
    assert budget.take() is None  # the three are 5 s old: still in the window
    clock.now += 5
    assert budget.take() is not None  # 10 s later the oldest left it
    clock.now += 1
    assert budget.take() is not None and budget.take() is not None
    assert budget.take() is None


def test_a_slot_given_back_is_free_at_once():
    clock = Clock()
    budget = handshake.NonceBudget(2, 10.0, clock=clock)
    first = budget.take()
    assert first is not None and budget.take() is not None and budget.take() is None
    budget.give_back(first)
    assert budget.take() is not None and budget.take() is None
    clock.now += 20
    budget.give_back(first)  # long out of the window: nothing to give back, nothing breaks
    assert budget.take() is not None


def test_a_cap_of_zero_resolves_nothing():
    assert handshake.NonceBudget(0, 10.0).take() is None


def test_refusals_are_logged_once_per_window(caplog):
    clock = Clock()
    budget = handshake.NonceBudget(1, 10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="shop.clerk.handshake"):
        budget.take()
        for _ in range(50):
            assert budget.take() is None
        clock.now += 3
        for _ in range(50):
            assert budget.take() is None  # the slot is still 3 s from leaving
        clock.now += 9  # a new window: its first refusal says how many the last line left unsaid
        budget.take()
        assert budget.take() is None
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert "(1 since the last such line)" in lines[0] and "(100 since the last such line)" in lines[1]


def test_threads_cannot_overshoot_the_cap():
    """40 threads at once, 1000 takes: exactly the cap succeeds. (The GIL makes the race the lock
    prevents too rare to catch here; this checks the answer under threads, not the lock itself.)"""
    budget = handshake.NonceBudget(10, 60.0)
    start = threading.Barrier(40)
    taken: list[float | None] = []

    def take() -> None:
        start.wait()
        taken.extend(budget.take() for _ in range(25))

    threads = [threading.Thread(target=take) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == 1000 and sum(slot is not None for slot in taken) == 10


def test_authenticate_asks_the_backend_api_at_most_the_budget():
    asked: list[str] = []

    def payload(nonce: str) -> list[str]:
        asked.append(nonce)
        raise ClerkAPIError("Clerk refused the handshake nonce (resource_not_found).", status=404)

    route = handshake.Handshake(f"https://{TEST_FRONTEND_API}", payload, nonce_budget=handshake.NonceBudget(4, 60.0))
    for index in range(100):
        incoming = handshake.Incoming(
            "GET", "https://shop.test/orders", (), PAGE, {"__clerk_handshake_nonce": f"made-up-{index}"}
        )
        decision = handshake.authenticate(incoming, VERIFIER, PROD, route)
        assert decision.status == handshake.SIGNED_OUT
    assert asked == [f"made-up-{index}" for index in range(4)]
