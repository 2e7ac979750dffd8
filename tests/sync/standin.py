"""A stand-in for Clerk's Backend API on a real HTTP server on 127.0.0.1, holding users in memory.

It answers what the shop calls (`GET /v1/users`, `/v1/users/count`, `/v1/users/{id}`) in Clerk's
formats, checks the Bearer secret key, and records every request. Tests steer it with:

- `before_page(offset)`: called before a page is answered (to create or delete users mid-listing);
- `faults`: a queue of (path predicate, Response) answered instead, once each, in order;
- `blocker`: a threading.Event every page waits on while it is set to block.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.support import live_server

SECRET_KEY = "sk_test_c3RhbmRpbiBjbGVyayBzZWNyZXQga2V5"


def clerk_error(status: int, code: str, long_message: str, **headers: str) -> Response:
    body = {
        "errors": [{"message": long_message, "long_message": long_message, "code": code}],
        "clerk_trace_id": f"trace_{code}",
    }
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


class StandInClerk:
    def __init__(self, secret_key: str = SECRET_KEY):
        self.secret_key = secret_key
        self.users: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.before_page: Callable[[int], None] | None = None
        self.faults: list[tuple[Callable[[str], bool], Response]] = []
        self.wait_before_page: threading.Event | None = None
        self.page_started = threading.Event()
        self.lock = threading.RLock()
        self.url = ""

    # -- the data --------------------------------------------------------------------------

    def put(self, *users: dict[str, Any]) -> None:
        with self.lock:
            for user in users:
                self.users[user["id"]] = user

    def delete(self, clerk_id: str) -> None:
        with self.lock:
            self.users.pop(clerk_id, None)

    def ordered(self, order_by: str = "created_at") -> list[dict[str, Any]]:
        with self.lock:
            users = sorted(self.users.values(), key=lambda u: (u.get("created_at") or 0, u["id"]))
        return users[::-1] if order_by.startswith("-") else users

    def list_requests(self) -> list[dict[str, str]]:
        return [params for path, params in self.requests if path == "/v1/users"]

    def user_requests(self) -> list[str]:
        return [path.rsplit("/", 1)[1] for path, _ in self.requests if path.startswith("/v1/users/user_")]

    # -- HTTP ------------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        return self.answer(Request(environ))(environ, start_response)

    def answer(self, request: Request) -> Response:
        path = request.path
        with self.lock:
            self.requests.append((path, dict(request.args)))
            for index, (matches, response) in enumerate(self.faults):
                if matches(path):
                    del self.faults[index]
                    return response
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return clerk_error(
                401,
                "clerk_key_invalid",
                "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct.",
            )
        if path == "/v1/users/count":
            with self.lock:
                return _json({"object": "total_count", "total_count": len(self.users)})
        if path == "/v1/users":
            return self._page(request)
        if path.startswith("/v1/users/"):
            with self.lock:
                user = self.users.get(path.removeprefix("/v1/users/"))
            if user is None:
                return clerk_error(404, "resource_not_found", f"No user was found with id {path.rsplit('/', 1)[1]}")
            return _json(user)
        return Response("Not Found", status=404)

    def _page(self, request: Request) -> Response:
        offset = int(request.args.get("offset", 0))
        limit = int(request.args.get("limit", 10))
        if not 1 <= limit <= 500:
            return clerk_error(422, "form_param_value_invalid", "limit must be between 1 and 500")
        self.page_started.set()
        if self.wait_before_page is not None:
            self.wait_before_page.wait(timeout=30)
        if self.before_page is not None:
            self.before_page(offset)
        users = self.ordered(request.args.get("order_by", "-created_at"))
        return _json(users[offset : offset + limit])


def _json(body: Any) -> Response:
    return Response(json.dumps(body), content_type="application/json")


@contextmanager
def serve(clerk: StandInClerk) -> Iterator[StandInClerk]:
    with live_server(clerk) as url:
        clerk.url = f"{url}/v1"
        yield clerk
