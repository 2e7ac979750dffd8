"""Stand-ins shared by tests/scale and bench/load.py, and the checks that nothing accepted was lost.

- `Clerk` is Clerk and its Svix queue: it holds the authoritative state of every user, turns each
  change into a signed `user.*` delivery, and retries a delivery that got no 2xx the way Svix
  does (same `svix-id`, signed again with a fresh timestamp), on a schedule compressed to seconds.
  Some deliveries are sent again after they succeeded: Svix delivers at least once.
- `webhook_problems` and `order_problems` read PostgreSQL directly, as an auditor would (nothing
  here imports the app): every delivery accepted has exactly one processed event and one effect,
  every user is in Clerk's final state, every order a shopper saw placed is there with its lines.
- The page helpers read what a browser would from the shop's HTML (CSRF token, checkout form).

The bench drives it from Locust's greenlets and the tests from threads; a lock keeps it consistent.
"""

from __future__ import annotations

import heapq
import html
import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support import NEW_ADDRESS, WEBHOOK_SECRET, clerk_user, deleted_event, event, signed_headers

WEBHOOK_PATH = "/api/webhooks/clerk"
# Svix retries immediately, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h. The same eight
# retries, compressed to about a minute: a delivery still failing after the last one is lost.
RETRY_DELAYS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


@dataclass
class Message:
    """One Svix message: a Clerk event with its `svix-id`, and what became of its deliveries."""

    svix_id: str
    kind: str
    clerk_id: str
    body: str
    attempts: int = 0  # deliveries sent, retries and duplicates included
    failures: int = 0  # answers that were not 2xx (or no answer at all)
    accepted: bool = False  # some delivery got a 2xx
    gave_up: bool = False  # every retry failed
    processed: int = 0  # answers {"status": "processed"}: each is one effect
    retry_scheduled: bool = False


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    svix_id: str = field(compare=False)
    duplicate: bool = field(compare=False)


class Clerk:
    """Clerk's users and Svix's queue of deliveries to the shop.

    Clerk may start with `existing` users (already in the mirror, as after a sync); `change()`
    makes one change as Clerk would (a new user, up to `users` in all, an update, a deletion) and
    returns its message for a first delivery; `due()` hands out a retry or duplicate whose time
    has come; `answered()` records each delivery's answer and schedules what Svix would do next.
    """

    def __init__(
        self,
        *,
        users: int,
        existing: int = 0,
        prefix: str = "user_load",
        seed: int = 1,
        create_share: float = 0.75,
        delete_share: float = 0.03,
        duplicate_share: float = 0.05,
        secret: str = WEBHOOK_SECRET,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.users, self.prefix, self.secret, self.clock = users, prefix, secret, clock
        self.create_share, self.delete_share, self.duplicate_share = create_share, delete_share, duplicate_share
        self.rng = random.Random(seed)
        self.run = uuid.uuid4().hex[:8]
        self.state: dict[str, dict[str, Any] | None] = {}  # clerk_id -> live User JSON, or None once deleted
        self.messages: dict[str, Message] = {}
        self.duplicates = 0  # deliveries of an already accepted message, sent on purpose
        self.statuses: Counter[int] = Counter()  # every delivery's answer (0: none, the connection failed)
        self._versions: dict[str, int] = {}
        self._created_at: dict[str, int] = {}
        self._live: list[str] = []
        self._live_index: dict[str, int] = {}
        self._created = 0
        self._updated_at = int(time.time() * 1000)
        self._queue: list[_Due] = []
        self._seq = 0
        self._lock = threading.Lock()
        for _ in range(existing):
            self._new_version(create=True)

    # -- Clerk: the users ----------------------------------------------------------------------------

    def change(self) -> Message:
        """One change to Clerk's users, as its event queued for a first delivery (returned)."""
        with self._lock:
            create = self._created < self.users and (not self._live or self.rng.random() < self.create_share)
            clerk_id, kind, body = self._new_version(create=create)
            self._seq += 1
            svix_id = f"msg_{self.run}_{self._seq:07d}"
            message = Message(svix_id, kind, clerk_id, body)
            self.messages[svix_id] = message
            return message

    def _new_version(self, *, create: bool) -> tuple[str, str, str]:
        """Change one user in Clerk's state: (clerk_id, event type, the event's JSON)."""
        self._updated_at = max(self._updated_at + 1, int(time.time() * 1000))
        if create:
            clerk_id = f"{self.prefix}{self._created:06d}"
            self._created += 1
            kind, version = "user.created", 1
        else:
            clerk_id = self._live[self.rng.randrange(len(self._live))]
            version = self._versions[clerk_id] + 1
            kind = "user.deleted" if self.rng.random() < self.delete_share else "user.updated"
        self._versions[clerk_id] = version
        if kind == "user.deleted":
            self._remove_live(clerk_id)
            self.state[clerk_id] = None
            return clerk_id, kind, json.dumps(deleted_event(clerk_id))
        user = clerk_user(
            clerk_id,
            email=f"{clerk_id}.v{version}@example.com",
            updated_at=self._updated_at,
            first_name=f"Version{version}",
            last_name=f"Of {clerk_id}",
            created_at=self._created_at.setdefault(clerk_id, self._updated_at),
        )
        self.state[clerk_id] = user
        if create:
            self._live_index[clerk_id] = len(self._live)
            self._live.append(clerk_id)
        return clerk_id, kind, json.dumps(event(kind, user))

    def _remove_live(self, clerk_id: str) -> None:
        index = self._live_index.pop(clerk_id)
        last = self._live.pop()
        if last != clerk_id:
            self._live[index] = last
            self._live_index[last] = index

    def live_users(self) -> list[dict[str, Any]]:
        """Clerk's live users, as its Backend API lists them."""
        with self._lock:
            return [user for user in self.state.values() if user is not None]

    # -- Svix: the deliveries ------------------------------------------------------------------------

    def headers(self, message: Message) -> dict[str, str]:
        """Signed now: a retry carries the same svix-id with a fresh timestamp and signature."""
        return signed_headers(message.body, svix_id=message.svix_id, secret=self.secret)

    def due(self) -> tuple[Message, bool] | None:
        """The next retry or duplicate whose time has come: (message, is_duplicate), or None."""
        with self._lock:
            now = self.clock()
            while self._queue and self._queue[0].at <= now:
                item = heapq.heappop(self._queue)
                message = self.messages[item.svix_id]
                if item.duplicate:
                    return message, True
                message.retry_scheduled = False
                if not message.accepted:
                    return message, False
            return None

    def sending(self, message: Message, *, duplicate: bool = False) -> None:
        with self._lock:
            message.attempts += 1
            if duplicate:
                self.duplicates += 1

    def answered(self, message: Message, status: int, outcome: str | None, *, duplicate: bool = False) -> None:
        """Record one delivery's answer (status 0: no answer, the connection failed)."""
        with self._lock:
            self.statuses[status] += 1
            if 200 <= status < 300:
                first = not message.accepted
                message.accepted = True
                if outcome == "processed":
                    message.processed += 1
                if first and not duplicate and self.rng.random() < self.duplicate_share:
                    self._schedule(message, self.rng.uniform(0.05, 2.0), duplicate=True)
                return
            message.failures += 1
            if duplicate or message.accepted or message.retry_scheduled:
                return
            if message.failures > len(RETRY_DELAYS):
                message.gave_up = True
                return
            message.retry_scheduled = True
            self._schedule(message, RETRY_DELAYS[message.failures - 1], duplicate=False)

    def _schedule(self, message: Message, delay: float, *, duplicate: bool) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Due(self.clock() + delay, self._seq, message.svix_id, duplicate))

    def pending(self) -> int:
        """Messages not accepted yet that Svix would still retry."""
        with self._lock:
            return sum(1 for m in self.messages.values() if not m.accepted and not m.gave_up)

    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def counts(self) -> dict[str, int]:
        with self._lock:
            messages = list(self.messages.values())
        return {
            "messages": len(messages),
            "deliveries": sum(m.attempts for m in messages),
            "accepted": sum(1 for m in messages if m.accepted),
            "lost": sum(1 for m in messages if not m.accepted),
            "failed_deliveries": sum(m.failures for m in messages),
            "retried": sum(1 for m in messages if m.failures),
            "duplicates_sent": self.duplicates,
            "users": len(self.state),
            "users_in_messages": len({m.clerk_id for m in messages}),
            "deleted": sum(1 for user in self.state.values() if user is None),
        }


def deliver(post: Callable[..., Any], url: str, clerk: Clerk, message: Message, *, duplicate: bool = False) -> int:
    """One delivery through `post` (requests' or Locust's): record the answer; return its status (0: none)."""
    clerk.sending(message, duplicate=duplicate)
    try:
        response = post(url, data=message.body, headers=clerk.headers(message), timeout=15)
    except OSError:  # requests' ConnectionError is one
        clerk.answered(message, 0, None, duplicate=duplicate)
        return 0
    status = response.status_code or 0  # Locust reports a failed connection as status 0
    outcome = None
    if 200 <= status < 300:
        try:
            outcome = response.json().get("status")
        except ValueError:
            outcome = None
    clerk.answered(message, status, outcome, duplicate=duplicate)
    return status


# -- the auditor's checks ---------------------------------------------------------------------------


def webhook_problems(conn, clerk: Clerk) -> tuple[list[str], dict[str, int]]:
    """Every accepted delivery has exactly one processed event and one effect; users are Clerk's."""
    rows: dict[str, list[tuple[str, int]]] = {}
    for svix_id, status, count in conn.execute(
        "SELECT svix_id, status::text, count(*) FROM webhook_events WHERE starts_with(svix_id, %s) GROUP BY 1, 2",
        (f"msg_{clerk.run}_",),
    ):
        rows.setdefault(svix_id, []).append((status.lower(), count))
    stored = {
        clerk_id: rest
        for clerk_id, *rest in conn.execute(
            "SELECT clerk_id, email, first_name, last_name, image_url, clerk_updated_at, deleted_at IS NOT NULL,"
            " needs_resync FROM users WHERE starts_with(clerk_id, %s)",
            (clerk.prefix,),
        )
    }
    problems = []
    messages = list(clerk.messages.values())
    lost = [m.svix_id for m in messages if not m.accepted]
    if lost:
        problems.append(f"{len(lost)} messages never accepted (lost), e.g. {lost[:3]}")
    not_once = [m.svix_id for m in messages if m.accepted and rows.get(m.svix_id) != [("processed", 1)]]
    if not_once:
        problems.append(f"{len(not_once)} accepted messages without exactly one processed event, e.g. {not_once[:3]}")
    twice = [m.svix_id for m in messages if m.processed > 1]
    if twice:
        problems.append(f"{len(twice)} messages answered 'processed' more than once (two effects), e.g. {twice[:3]}")
    strangers = [svix_id for svix_id in rows if svix_id not in clerk.messages]
    if strangers:
        problems.append(f"{len(strangers)} webhook events for messages never sent")
    wrong = []
    for clerk_id, user in clerk.state.items():
        found = stored.get(clerk_id)
        if user is None:
            expected = [None, None, None, None, None, True, False]
            # a tombstone keeps the clerk_updated_at it had; only the erasure matters
            ok = found is not None and found[:4] == expected[:4] and found[5:] == expected[5:]
        else:
            primary = user["primary_email_address_id"]
            address = next(a["email_address"] for a in user["email_addresses"] if a["id"] == primary)
            expected = [address, user["first_name"], user["last_name"], user["image_url"], user["updated_at"]]
            ok = found == [*expected, False, False]
        if not ok:
            wrong.append(clerk_id)
    if wrong:
        problems.append(f"{len(wrong)} users differ from Clerk's final state, e.g. {wrong[:3]}")
    extra = [clerk_id for clerk_id in stored if clerk_id not in clerk.state]
    if extra:
        problems.append(f"{len(extra)} users in the mirror that Clerk never had")
    counts = {
        "events": sum(count for found in rows.values() for _, count in found),
        "events_processed": sum(count for found in rows.values() for status, count in found if status == "processed"),
        "duplicate_effects": sum(m.processed - 1 for m in messages if m.processed > 1)
        + sum(1 for found in rows.values() if sum(count for _, count in found) > 1),
        "users_checked": len(clerk.state),
        "users_wrong": len(wrong),
    }
    return problems, counts


@dataclass(frozen=True)
class PlacedOrder:
    """An order a shopper saw placed (the checkout answered with its page)."""

    order_id: int
    clerk_id: str
    idempotency_key: str
    total_cents: int | None
    lines: tuple[tuple[str, int], ...]  # (product name, quantity) as the checkout page showed them


def order_problems(conn, placed: list[PlacedOrder], clerk_ids: list[str]) -> tuple[list[str], dict[str, int]]:
    """Every order a shopper saw placed is there, once, with the lines and total the checkout showed."""
    orders = {
        order_id: (clerk_id, key, total)
        for order_id, clerk_id, key, total in conn.execute(
            "SELECT o.id, u.clerk_id, o.idempotency_key, o.total_cents FROM orders o JOIN users u ON u.id = o.user_id"
            " WHERE u.clerk_id = ANY(%s)",
            (clerk_ids,),
        )
    }
    items: dict[int, list[tuple[str, int]]] = {}
    for order_id, name, quantity in conn.execute(
        "SELECT order_id, product_name, quantity FROM order_items WHERE order_id = ANY(%s) ORDER BY id",
        (list(orders),),
    ):
        items.setdefault(order_id, []).append((name, quantity))
    problems, missing, wrong = [], [], []
    for order in placed:
        found = orders.get(order.order_id)
        if found is None:
            missing.append(order.order_id)
            continue
        same_total = order.total_cents is None or found[2] == order.total_cents
        same_lines = sorted(items.get(order.order_id, [])) == sorted(order.lines)
        if found[:2] != (order.clerk_id, order.idempotency_key) or not same_total or not same_lines:
            wrong.append(order.order_id)
    if missing:
        problems.append(f"{len(missing)} orders shoppers saw placed are missing, e.g. {missing[:3]}")
    if wrong:
        problems.append(f"{len(wrong)} orders differ from what the checkout showed, e.g. {wrong[:3]}")
    confirmed = {order.order_id for order in placed}
    if len(confirmed) != len(placed):
        problems.append(f"{len(placed) - len(confirmed)} checkouts confirmed an order another checkout had")
    unconfirmed = [order_id for order_id in orders if order_id not in confirmed]
    counts = {
        "accepted": len(placed),
        "found": len(placed) - len(missing),
        "wrong": len(wrong),
        "in_database": len(orders),
        "unconfirmed": len(unconfirmed),  # placed, but the shopper never saw the order page
    }
    return problems, counts


# -- what a browser reads from the pages ------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
_TOTAL = re.compile(r'name="expected_total" value="(\d+)"')
_LINE = re.compile(r'<tr><td[^>]*>([^<]+?) <span class="muted[^"]*">[^<]*</span></td><td class="num"[^>]*>(\d+)</td>')
_ORDER_PATH = re.compile(r"/orders/(\d+)$")


def csrf_token(page: str) -> str | None:
    found = _CSRF.search(page)
    return found.group(1) if found else None


@dataclass(frozen=True)
class CheckoutForm:
    csrf_token: str
    idempotency_key: str
    expected_total: int | None
    lines: tuple[tuple[str, int], ...]

    def data(self) -> dict[str, str]:
        data = {"csrf_token": self.csrf_token, "idempotency_key": self.idempotency_key, **NEW_ADDRESS}
        if self.expected_total is not None:
            data["expected_total"] = str(self.expected_total)
        return data


def checkout_form(page: str) -> CheckoutForm | None:
    token, key = csrf_token(page), _KEY.search(page)
    if token is None or key is None:
        return None
    total = _TOTAL.search(page)
    lines = tuple((html.unescape(name), int(quantity)) for name, quantity in _LINE.findall(page))
    return CheckoutForm(token, key.group(1), int(total.group(1)) if total else None, lines)


def order_id_from(location: str) -> int | None:
    """The order page a checkout redirects to (`/orders/<id>`), or None."""
    found = _ORDER_PATH.search(location.split("?", 1)[0])
    return int(found.group(1)) if found else None


def as_if_on_https(jar) -> None:
    """Keep sending the shop's cookies as a browser on HTTPS does. In production they are `Secure`,
    and gunicorn sits behind a TLS-terminating proxy; a client speaking plain HTTP to 127.0.0.1
    plays the browser's part only if it still sends them. (requests copies the session's cookies
    into a fresh jar for each request, so a cookie policy would not survive: the flag is cleared.)"""
    for cookie in jar:
        cookie.secure = False


# -- Svix in a thread (the tests; the bench drives `deliver` from Locust) ---------------------------


def send_while(clerk: Clerk, urls: list[str], running: threading.Event, *, rate: float = 200.0) -> None:
    """Svix while `running` is set: Clerk's new changes at about `rate` per second, retries and
    duplicates as they fall due; each delivery to one of `urls`, picked at random."""
    import requests

    session, rng = requests.Session(), random.Random()
    while running.is_set():
        due = clerk.due()
        message, duplicate = due if due is not None else (clerk.change(), False)
        deliver(session.post, rng.choice(urls) + WEBHOOK_PATH, clerk, message, duplicate=duplicate)
        time.sleep(1 / rate)


def drain(clerk: Clerk, urls: list[str], *, limit: float = 60.0) -> float:
    """Svix once Clerk changes nothing more: retries and duplicates until none is left; the seconds it took."""
    import requests

    session, rng, started = requests.Session(), random.Random(), time.monotonic()
    while (clerk.pending() or clerk.queued()) and time.monotonic() - started < limit:
        due = clerk.due()
        if due is None:
            time.sleep(0.05)
            continue
        message, duplicate = due
        deliver(session.post, rng.choice(urls) + WEBHOOK_PATH, clerk, message, duplicate=duplicate)
    return time.monotonic() - started


def deliver_to_both(clerk: Clerk, message: Message, urls: list[str]) -> list[int]:
    """One delivery sent to two instances at the same moment (two threads released by a barrier)."""
    import requests

    barrier, statuses = threading.Barrier(len(urls)), [0] * len(urls)

    def send(index: int) -> None:
        session = requests.Session()
        barrier.wait()
        statuses[index] = deliver(session.post, urls[index] + WEBHOOK_PATH, clerk, message, duplicate=index > 0)

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses
