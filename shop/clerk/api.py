"""Clerk's Backend API: the few calls the shop makes, with retries and operator-readable errors.

One `requests` session per app. Its adapter retries, through urllib3, what is worth retrying:
429 (waiting as long as `Retry-After` says), 5xx, refused connections and timeouts, with
exponential backoff; never another 4xx. Every failure becomes a `ClerkAPIError` whose message is
one sentence an operator can act on. The secret key never appears in a message.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import HTTPError as URLLib3Error
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_MAX = 60  # seconds: Clerk's rate-limit window is 10 s; never stall a job for hours
MAX_PAGE = 500  # Clerk's largest `limit` for GET /users
EXTENSION = "clerk_api"


class ClerkAPIError(Exception):
    """A Backend API call that failed; `str(exc)` is one sentence for the operator."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


def _error_details(response: requests.Response) -> tuple[str | None, str | None, str | None]:
    """(code, long message, trace id) from Clerk's `{"errors": [{…}], "clerk_trace_id": …}`."""
    try:
        body = response.json()
    except ValueError:
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    code = message = None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = first.get("code") if isinstance(first.get("code"), str) else None
        for key in ("long_message", "message"):
            if isinstance(first.get(key), str) and first[key].strip():
                message = first[key].strip()
                break
    trace = body.get("clerk_trace_id")
    return code, message, trace if isinstance(trace, str) else None


def _connection_reason(exc: BaseException) -> str:
    text = repr(exc)
    if "ConnectionRefused" in text or "Connection refused" in text:
        return "connection refused"
    if isinstance(exc, requests.Timeout) or "Timeout" in text or "timed out" in text:
        return "no answer in time"
    if "NameResolution" in text or "getaddrinfo" in text or "Name or service not known" in text:
        return "host name not found"
    if "SSL" in text:
        return "TLS handshake failed"
    return "connection failed"


class ClerkAPI:
    """A client for the calls the shop needs: get one user, list users, count them, a handshake's cookies."""

    def __init__(
        self,
        base_url: str,
        secret_key: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self._secret_key = secret_key
        self._lock = threading.Lock()
        self._failed_attempts = 0  # attempts urllib3 judged retryable (errors, 429, 5xx)
        self.calls = 0  # HTTP requests made, retries included

        client = self

        class _CountingRetry(Retry):
            """urllib3 calls increment() once per failed attempt it may retry: count them."""

            def increment(
                self,
                method: str | None = None,
                url: str | None = None,
                response: BaseHTTPResponse | None = None,
                error: Exception | None = None,
                _pool: ConnectionPool | None = None,
                _stacktrace: TracebackType | None = None,
            ) -> Self:
                with client._lock:
                    client._failed_attempts += 1
                return super().increment(method, url, response, error, _pool, _stacktrace)

        self._retry = _CountingRetry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            redirect=0,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff,
            respect_retry_after_header=True,
            retry_after_max=RETRY_AFTER_MAX,
            raise_on_status=False,  # the last answer is returned, so Clerk's error body can be shown
        )
        self._session = requests.Session()
        self._session.mount("https://", HTTPAdapter(max_retries=self._retry))
        self._session.mount("http://", HTTPAdapter(max_retries=self._retry))
        self._session.headers.update(
            {"Authorization": f"Bearer {secret_key}", "Accept": "application/json", "User-Agent": "shop-sync/1"}
        )

    # -- the calls -------------------------------------------------------------------------

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        """The Clerk User, or None when Clerk answers 404 `resource_not_found` (deleted or never existed)."""
        if not isinstance(user_id, str) or not user_id.strip():
            raise ClerkAPIError("A Clerk user id is needed (user_…).")
        path = f"/users/{quote(user_id, safe='')}"
        response = self._get(path, {}, not_found_ok=True)
        if response.status_code == 404:
            return None
        body = self._json(response, path)
        if not isinstance(body, dict):
            raise self._shape_error(path, body, "a user object")
        return body

    def list_users(self, *, limit: int = MAX_PAGE, offset: int = 0, order_by: str = "created_at") -> list[dict]:
        """One page of GET /users. Clerk answers a bare JSON array; anything else is an error, not an empty page."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        if offset < 0:
            raise ValueError("offset must not be negative")
        path = "/users"
        response = self._get(path, {"limit": limit, "offset": offset, "order_by": order_by})
        body = self._json(response, path)
        if not isinstance(body, list):
            raise self._shape_error(path, body, "a JSON array of users")
        return body

    def count_users(self) -> int:
        """GET /users/count → `{"object": "total_count", "total_count": N}`."""
        path = "/users/count"
        body = self._json(self._get(path, {}), path)
        count = body.get("total_count") if isinstance(body, dict) else None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise self._shape_error(path, body, '{"total_count": N}')
        return count

    def handshake_payload(self, nonce: str) -> list[str]:
        """GET /clients/handshake_payload → the Set-Cookie directives a handshake nonce stands for."""
        if not isinstance(nonce, str) or not nonce or len(nonce) > 4096:
            raise ClerkAPIError("A handshake nonce is needed.")
        path = "/clients/handshake_payload"
        try:
            response = self._get(path, {"nonce": nonce})
        except ClerkAPIError as exc:
            if exc.code and exc.status in (400, 404, 422):
                raise ClerkAPIError(
                    f"Clerk refused the handshake nonce ({exc.code}): it expired or was already used.",
                    status=exc.status,
                    code=exc.code,
                ) from None
            raise
        body = self._json(response, path)
        directives = body.get("directives") if isinstance(body, dict) else None
        if not isinstance(directives, list) or not all(isinstance(item, str) for item in directives):
            raise self._shape_error(path, body, '{"directives": [Set-Cookie values]}')
        return directives

    # -- plumbing --------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any], *, not_found_ok: bool = False) -> requests.Response:
        """The answer when it succeeded, or (with not_found_ok) when it is a 404 `resource_not_found`; else raises."""
        url = self.base_url + path
        before = self._failed_attempts
        try:
            response = self._session.get(url, params=params, timeout=self.timeout)
        except (requests.RequestException, URLLib3Error) as exc:
            with self._lock:
                self.calls += max(1, self._failed_attempts - before)
            raise ClerkAPIError(
                self._scrub(
                    f"Could not reach Clerk's Backend API at {self.base_url} ({_connection_reason(exc)}, "
                    f"{self.retries} retries): check CLERK_API_URL and the network."
                )
            ) from None
        with self._lock:
            # A retryable answer (429, 5xx) was counted by the retry policy, even the last one.
            self.calls += self._failed_attempts - before + (0 if response.status_code in RETRY_STATUSES else 1)
        if response.status_code < 300:
            return response
        code, message, trace = _error_details(response)
        if response.status_code == 404 and not_found_ok and code == "resource_not_found":
            return response
        raise self._status_error(path, response.status_code, code, message, trace)

    def _status_error(
        self, path: str, status: int, code: str | None, message: str | None, trace: str | None
    ) -> ClerkAPIError:
        said = f" ({code})" if code else ""
        said += f": {message.rstrip('.')}" if message else ""
        where = f"GET {path}"
        if status == 401:
            if code == "clerk_key_invalid" or code is None:
                text = f"Clerk rejected the secret key{said}; check CLERK_SECRET_KEY (Clerk's dashboard, API keys)"
            else:
                text = f"Clerk refused {where} with HTTP 401{said}; check CLERK_SECRET_KEY"
        elif status == 403:
            text = f"Clerk refused {where} with HTTP 403{said}; check that CLERK_SECRET_KEY belongs to this instance"
        elif status == 404:
            text = (
                f"Clerk answered {where} with HTTP 404{said}; check CLERK_API_URL (normally https://api.clerk.com/v1)"
            )
        elif status == 429:
            text = (
                f"Clerk's rate limit was still exceeded after {self.retries} retries on {where}{said}; "
                "wait a minute and run it again"
            )
        elif status >= 500:
            text = (
                f"Clerk's Backend API failed with HTTP {status} after {self.retries} retries on {where}{said}; "
                "try again later (https://status.clerk.com)"
            )
        else:
            text = f"Clerk refused {where} with HTTP {status}{said}"
        if trace:
            text += f" (clerk_trace_id {trace})"
        return ClerkAPIError(self._scrub(text + "."), status=status, code=code)

    def _json(self, response: requests.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise ClerkAPIError(
                f"Clerk's Backend API answered GET {path} with a body that is not JSON "
                f"(HTTP {response.status_code}, {kind}); check that CLERK_API_URL points at the Backend API "
                "(https://api.clerk.com/v1).",
                status=response.status_code,
            ) from None

    def _shape_error(self, path: str, body: Any, expected: str) -> ClerkAPIError:
        names: dict[type, str] = {dict: "a JSON object", list: "a JSON array", str: "a string"}
        got = names.get(type(body), type(body).__name__)
        if body is None:
            got = "null"
        return ClerkAPIError(
            f"Clerk's Backend API answered GET {path} with {got} instead of {expected}; "
            "check CLERK_API_URL (https://api.clerk.com/v1) and the API version.",
            status=200,
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret_key, "sk_***") if self._secret_key else text


def clerk_api() -> ClerkAPI:
    """The app's client, built once from CLERK_API_URL and CLERK_SECRET_KEY."""
    app = current_app
    client = app.extensions.get(EXTENSION)
    if client is None:
        secret_key = app.config.get("CLERK_SECRET_KEY")
        if not secret_key:
            raise ClerkAPIError(
                "CLERK_SECRET_KEY is not set: the Backend API needs it; copy it from Clerk's dashboard "
                "(Configure → API keys) into .env."
            )
        client = app.extensions.setdefault(
            EXTENSION,
            ClerkAPI(app.config["CLERK_API_URL"], secret_key, backoff=app.config["CLERK_API_BACKOFF_SECONDS"]),
        )
    return client
