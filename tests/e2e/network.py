"""What a page downloads, seen through the DevTools protocol, with the browser's HTTP cache left on.

Playwright's own routing (tests/e2e/frontend_api.py's `install`) switches Chromium's HTTP cache off, so a
repeat view would download everything again. Here Clerk's Frontend API fake answers through the DevTools
protocol's Fetch domain instead, for Clerk's hosts only, and the shop's own requests go to the server and
the cache as in a shopper's browser. `Network` records every request of one page from its Network events.
Used by tests/e2e/test_page_weight.py and bench/pages.py.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests.support import TEST_FRONTEND_API

BUNDLE_CACHING = "public, max-age=3600"  # Clerk's CDN decides in production; the same for every run here


class PausedRequest:
    """One request paused by the Fetch domain, shaped like the Playwright `Route` FrontendAPI answers
    (request.url/method/headers/post_data, fulfill, abort)."""

    def __init__(self, cdp, paused: dict[str, Any], on_bundle: Callable[[str, bytes], None] | None = None):
        self.cdp, self.id, self.on_bundle = cdp, paused["requestId"], on_bundle
        request = paused["request"]
        self.url: str = request["url"]
        self.method: str = request["method"]
        self.headers = {name.lower(): value for name, value in request.get("headers", {}).items()}
        self.post_data: str | None = request.get("postData")
        if self.post_data is None and request.get("postDataEntries"):
            self.post_data = b"".join(base64.b64decode(e.get("bytes", "")) for e in request["postDataEntries"]).decode()

    @property
    def request(self) -> PausedRequest:
        return self

    def fulfill(
        self, *, status: int = 200, body: str | bytes = b"", json: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        headers = dict(headers or {})
        if json is not None:
            body = _dumps(json)
            headers.setdefault("Content-Type", "application/json")
        data = body.encode() if isinstance(body, str) else body
        if status == 200 and urlsplit(self.url).path.startswith("/npm/"):  # Clerk's bundles
            headers["Cache-Control"] = BUNDLE_CACHING
            if self.on_bundle:
                self.on_bundle(self.url, data)
        self.cdp.send(
            "Fetch.fulfillRequest",
            {
                "requestId": self.id,
                "responseCode": status,
                "responseHeaders": [{"name": k, "value": v} for k, v in headers.items()],
                "body": base64.b64encode(data).decode(),
            },
        )

    def abort(self, _reason: str = "failed") -> None:
        self.cdp.send("Fetch.failRequest", {"requestId": self.id, "errorReason": "InternetDisconnected"})


def _dumps(value: Any) -> str:  # `json` is fulfill()'s parameter, as in Playwright's Route
    return json.dumps(value)


@dataclass
class Request:
    url: str
    status: int = 0
    cached: bool = False  # answered by the browser's cache: it never reached a server
    bytes: int = 0  # received from the network: headers and body as sent (compressed or not)
    done: bool = False


@dataclass
class Network:
    """The requests of one page since the last `reset()`, from its CDP session's Network events."""

    requests: dict[str, Request] = field(default_factory=dict)
    last_activity: float = field(default_factory=time.monotonic)
    # What the fake failed to answer (its handler raised): the request is failed rather than left paused.
    problems: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.requests = {}
        self.last_activity = time.monotonic()

    def attach(self, cdp) -> None:
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.requestServedFromCache", lambda e: self._update(e["requestId"], cached=True))
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.loadingFailed", lambda e: self._update(e["requestId"], done=True))
        cdp.send("Network.enable")

    def _update(self, request_id: str, **changes: Any) -> Request | None:
        request = self.requests.get(request_id)
        if request:
            for name, value in changes.items():
                setattr(request, name, value)
            self.last_activity = time.monotonic()
        return request

    def _sent(self, e: dict[str, Any]) -> None:
        url = e["request"]["url"]
        if url.startswith(("http://", "https://")):
            self.requests[e["requestId"]] = Request(url)  # a redirect keeps its id: the last hop counts
            self.last_activity = time.monotonic()

    def _response(self, e: dict[str, Any]) -> None:
        response = e["response"]
        request = self._update(e["requestId"], status=response["status"])
        if request and (response.get("fromDiskCache") or response.get("fromPrefetchCache")):
            request.cached = True

    def _finished(self, e: dict[str, Any]) -> None:
        request = self._update(e["requestId"], done=True)
        if request and not request.cached:
            request.bytes = int(e["encodedDataLength"])

    def quiet(self, seconds: float, *, prefix: str = "") -> bool:
        """Nothing (whose URL starts with `prefix`) in flight, and nothing happened for `seconds`."""
        idle = all(r.done for r in self.requests.values() if r.url.startswith(prefix))
        return idle and time.monotonic() - self.last_activity >= seconds

    def in_flight(self) -> str:
        """The requests still waiting (for a timeout's message)."""
        waiting = [r.url for r in self.requests.values() if not r.done]
        return f"{len(waiting)} request(s) in flight: {', '.join(waiting[:8]) or 'none'}; fake: {self.problems}"

    def fetched(self, prefix: str) -> list[Request]:
        """The requests for URLs starting with `prefix` that reached a server (not the browser's cache)."""
        return [r for r in self.requests.values() if r.url.startswith(prefix) and not r.cached]


def install(fapi, context, page, origin: str, on_bundle: Callable[[str, bytes], None] | None = None) -> Network:
    """`fapi` (tests/e2e/frontend_api.py's FrontendAPI) answers Clerk's hosts for `page`, the cache on;
    returns the page's Network record."""
    fapi.origin = origin  # the tokens' `azp`, and where its webhooks go
    cdp = context.new_cdp_session(page)
    network = Network()
    network.attach(cdp)
    # The same handler for each host as FrontendAPI.install gives Playwright's routes.
    handlers = {TEST_FRONTEND_API: fapi._handle, "clerk-telemetry.com": fapi._telemetry, "img.clerk.com": fapi._image}

    def answer(paused: dict[str, Any]) -> None:
        request = PausedRequest(cdp, paused, on_bundle)
        try:
            handlers[urlsplit(request.url).hostname](request)
        except Exception as error:  # a request left paused would hang the page's load: fail it, and say why
            network.problems.append(f"{request.method} {request.url}: {error!r}")
            request.abort()

    cdp.on("Fetch.requestPaused", answer)
    cdp.send("Fetch.enable", {"patterns": [{"urlPattern": f"https://{host}/*"} for host in handlers]})
    return network
