"""A fake of Clerk's Frontend API for the REAL clerk-js 6 and @clerk/ui 1 bundles, inside Playwright.

Playwright intercepts every request to `https://<frontend-api-host>/…`: the `/npm/…` script URLs
are answered with the bundles `npm ci` installed (node_modules/@clerk/clerk-js and @clerk/ui, the
versions package-lock.json pins), and the `/v1/…` calls clerk-js makes are answered with JSON shaped
like Clerk's own test fixtures (clerk/javascript, packages/clerk-js/src/test/fixtures.ts and
fixture-helpers.ts): the environment, the client with its sessions, an e-mail-code sign-in, session
tokens minted with the test run's RSA key, sign-out, and `user.updateMetadata` (PATCH /v1/me/metadata),
after which it sends the app the signed `user.updated` webhook Clerk would. Telemetry to
clerk-telemetry.com is counted.

It keeps one client (one browser context), as Clerk keeps one per browser.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from devtools.clerk_standin.store import merge_metadata
from tests.support import WEBHOOK_SECRET, TokenMinter, event, signed_headers

NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules" / "@clerk"
BUNDLES = {"clerk-js": NODE_MODULES / "clerk-js" / "dist", "ui": NODE_MODULES / "ui" / "dist"}
EMAIL_CODE = "424242"


def bundles_installed() -> bool:
    return (BUNDLES["clerk-js"] / "clerk.browser.js").exists() and (BUNDLES["ui"] / "ui.browser.js").exists()


def _ms() -> int:
    return int(time.time() * 1000)


def environment() -> dict[str, Any]:
    """`GET /v1/environment`: e-mail code sign-in and Google switched on, as in the shop's dashboard."""
    off = {
        "enabled": False,
        "required": False,
        "used_for_first_factor": False,
        "first_factors": [],
        "used_for_second_factor": False,
        "second_factors": [],
        "verifications": [],
        "verify_at_sign_up": False,
    }
    attributes = {
        name: dict(off)
        for name in (
            "phone_number",
            "username",
            "web3_wallet",
            "password",
            "authenticator_app",
            "backup_code",
            "passkey",
        )
    }
    attributes["email_address"] = {
        **off,
        "enabled": True,
        "required": True,
        "used_for_first_factor": True,
        "first_factors": ["email_code"],
        "verifications": ["email_code"],
        "verify_at_sign_up": True,
    }
    attributes["first_name"] = {**off, "enabled": True}
    attributes["last_name"] = {**off, "enabled": True}
    return {
        "id": "env_1",
        "object": "environment",
        "auth_config": {"object": "auth_config", "id": "aac_1", "single_session_mode": True},
        "display_config": {
            "object": "display_config",
            "id": "display_config_1",
            "instance_environment_type": "development",
            "application_name": "Shop",
            "theme": {"buttons": {}, "general": {"color": "#6c47ff"}, "accounts": {}},
            "preferred_sign_in_strategy": "otp",
            "logo_image_url": "",
            "favicon_image_url": "",
            "home_url": "http://localhost",
            "sign_in_url": "http://localhost/sign-in",
            "sign_up_url": "http://localhost/sign-in",
            "user_profile_url": "http://localhost/account",
            "after_sign_in_url": "http://localhost/",
            "after_sign_up_url": "http://localhost/",
            "after_sign_out_one_url": "http://localhost/",
            "after_sign_out_all_url": "http://localhost/",
            "after_switch_session_url": "http://localhost/",
            "organization_profile_url": "",
            "create_organization_url": "",
            "after_leave_organization_url": "",
            "after_create_organization_url": "",
            "support_email": "",
            "branded": True,
            "clerk_js_version": "6",
            "captcha_public_key": None,
            "captcha_widget_type": None,
            "captcha_provider": None,
            "captcha_public_key_invisible": None,
            "captcha_oauth_bypass": [],
            "show_devmode_warning": False,
        },
        "organization_settings": {
            "enabled": False,
            "max_allowed_memberships": 5,
            "force_organization_selection": False,
            "domains": {"enabled": False, "enrollment_modes": []},
            "slug": {"disabled": True},
            "actions": {"admin_delete": False},
        },
        "user_settings": {
            "attributes": attributes,
            "actions": {"delete_self": True, "create_organization": False},
            "social": {
                "oauth_google": {
                    "enabled": True,
                    "required": False,
                    "authenticatable": True,
                    "block_email_subaddresses": False,
                    "strategy": "oauth_google",
                    "not_selectable": False,
                    "name": "Google",
                    "logo_url": "https://img.clerk.com/static/google.png",
                }
            },
            "saml": {"enabled": False},
            "enterprise_sso": {"enabled": False},
            "sign_in": {"second_factor": {"required": False}},
            "sign_up": {
                "custom_action_required": False,
                "progressive": True,
                "captcha_enabled": False,
                "disable_hibp": False,
                "mode": "public",
            },
            "restrictions": {"allowlist": {"enabled": False}, "blocklist": {"enabled": False}},
            "password_settings": {
                "allowed_special_characters": "",
                "max_length": 0,
                "min_length": 8,
                "require_special_char": False,
                "require_numbers": False,
                "require_lowercase": False,
                "require_uppercase": False,
                "disable_hibp": True,
                "show_zxcvbn": False,
                "min_zxcvbn_strength": 0,
            },
            "passkey_settings": {"allow_autofill": False, "show_sign_in_button": False},
        },
        "commerce_settings": {
            "object": "commerce_settings",
            "id": "commerce_settings_1",
            "billing": {
                "user": {"enabled": False, "has_paid_plans": False},
                "organization": {"enabled": False, "has_paid_plans": False},
                "stripe_publishable_key": "",
            },
        },
        "maintenance_mode": False,
    }


class FrontendAPI:
    """Clerk's Frontend API for one browser: its client, its sessions, the tokens it mints."""

    def __init__(
        self,
        host: str,
        minter: TokenMinter,
        *,
        user_id: str,
        email: str,
        first_name: str,
        last_name: str,
        token_seconds: int = 60,
        webhook_secret: str = WEBHOOK_SECRET,
    ):
        self.host = host
        self.minter = minter
        self.user = {"id": user_id, "email": email, "first_name": first_name, "last_name": last_name}
        self.public_metadata: dict[str, Any] = {}  # only a backend writes it
        self.unsafe_metadata: dict[str, Any] = {}  # the signed-in user writes it (updateMetadata)
        self.user_created_at = _ms() - 86_400_000
        self.user_updated_at = self.user_created_at  # Clerk's updated_at: moves with every change, never back
        self.webhook_secret = webhook_secret
        self.webhooks: list[tuple[str, int | str]] = []  # (type, the app's status code or the error) per delivery
        self.metadata_updates: list[dict[str, Any]] = []  # the unsafe_metadata of each PATCH /v1/me/metadata
        self.refuse_metadata = False  # True: PATCH /v1/me/metadata fails as Clerk's 422 does
        self.token_seconds = token_seconds
        self.origin = ""  # the app's origin, the tokens' `azp`
        self.client_updated_at = _ms()
        self._sign_in: dict[str, Any] | None = None
        self._session: dict[str, Any] | None = None
        self.calls: list[tuple[str, str]] = []  # (method, path) of every /v1 call
        self.telemetry = 0
        self.tokens_minted = 0
        self.unknown: list[str] = []
        self.reachable = True  # False: /v1 calls fail as on a network that is down
        self._lock = threading.Lock()

    # Clerk's client changes, and with it its updated_at (which clerk-js copies into __client_uat), when a
    # sign-in or a session starts or ends; not at every read. Stamped at every read, a token minted a moment
    # before the stamp, in the previous second, looks older than its client and is refused.
    @property
    def session(self) -> dict[str, Any] | None:
        return self._session

    @session.setter
    def session(self, value: dict[str, Any] | None) -> None:
        self._session = value
        self.client_updated_at = _ms()

    @property
    def sign_in(self) -> dict[str, Any] | None:
        return self._sign_in

    @sign_in.setter
    def sign_in(self, value: dict[str, Any] | None) -> None:
        self._sign_in = value
        self.client_updated_at = _ms()

    # --- Playwright --------------------------------------------------------------------------------------

    def install(self, context, origin: str) -> None:
        self.origin = origin
        context.route(f"https://{self.host}/**", self._handle)
        context.route("https://clerk-telemetry.com/**", self._telemetry)
        context.route("https://img.clerk.com/**", self._image)

    def _image(self, route) -> None:
        """Clerk's image host: a one-colour avatar (the page must not depend on the network)."""
        svg = '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>'
        route.fulfill(
            status=200, body=svg, headers={"Content-Type": "image/svg+xml", "Access-Control-Allow-Origin": "*"}
        )

    def _telemetry(self, route) -> None:
        with self._lock:
            self.telemetry += 1
        route.fulfill(status=200, json={"success": True}, headers=self._cors(route.request))

    def _cors(self, request) -> dict[str, str]:
        return {
            "Access-Control-Allow-Origin": request.headers.get("origin", self.origin),
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Headers": request.headers.get("access-control-request-headers", "content-type"),
            "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
            "Vary": "Origin",
        }

    def _handle(self, route) -> None:
        request = route.request
        url = urlsplit(request.url)
        if url.path.startswith("/npm/"):
            return self._serve_bundle(route, url.path)
        if request.method == "OPTIONS":
            return route.fulfill(status=204, headers=self._cors(request))
        if not self.reachable:
            return route.abort("internetdisconnected")
        query = parse_qs(url.query)
        method = query.get("_method", [request.method])[0].upper()
        body = {k: v[-1] for k, v in parse_qs(request.post_data or "").items()}
        with self._lock:
            self.calls.append((method, url.path))
            status, payload = self._answer(method, url.path.removeprefix("/v1"), body)
        route.fulfill(status=status, json=payload, headers=self._cors(request))

    def _serve_bundle(self, route, path: str) -> None:
        # /npm/@clerk/clerk-js@6/dist/<file> or /npm/@clerk/ui@1/dist/<file>
        parts = path.split("/")
        package = parts[3].split("@")[0] if len(parts) > 5 else ""
        folder = BUNDLES.get(package)
        name = parts[-1]
        file = folder / name if folder and "/" not in name and not name.startswith(".") else None
        if file is None or not file.is_file():
            return route.fulfill(status=404, body="not found")
        route.fulfill(
            status=200,
            body=file.read_bytes(),
            headers={"Content-Type": "application/javascript", "Access-Control-Allow-Origin": "*"},
        )

    # --- Clerk's resources ---------------------------------------------------------------------------------

    def _user_json(self) -> dict[str, Any]:
        u = self.user
        email_id = "idn_" + u["id"].removeprefix("user_")
        return {
            "object": "user",
            "id": u["id"],
            "external_id": None,
            "primary_email_address_id": email_id,
            "primary_phone_number_id": None,
            "primary_web3_wallet_id": None,
            "username": None,
            "first_name": u["first_name"],
            "last_name": u["last_name"],
            "image_url": "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9",
            "has_image": False,
            "public_metadata": self.public_metadata,
            "unsafe_metadata": self.unsafe_metadata,
            "email_addresses": [
                {
                    "object": "email_address",
                    "id": email_id,
                    "email_address": u["email"],
                    "reserved": False,
                    "verification": {
                        "object": "verification_otp",
                        "status": "verified",
                        "strategy": "email_code",
                        "attempts": 1,
                        "expire_at": _ms() + 600_000,
                    },
                    "linked_to": [],
                }
            ],
            "phone_numbers": [],
            "web3_wallets": [],
            "passkeys": [],
            "external_accounts": [],
            "enterprise_accounts": [],
            "saml_accounts": [],
            "organization_memberships": [],
            "password_enabled": False,
            "two_factor_enabled": False,
            "totp_enabled": False,
            "backup_code_enabled": False,
            "delete_self_enabled": True,
            "create_organization_enabled": False,
            "last_sign_in_at": _ms(),
            "created_at": self.user_created_at,
            "updated_at": self.user_updated_at,
        }

    def webhook_user(self) -> dict[str, Any]:
        """The User as Clerk's `user.*` webhooks carry it: the Backend API's shape, `private_metadata` null."""
        user = self._user_json()
        del user["organization_memberships"]  # Frontend API only
        return {**user, "private_metadata": None, "banned": False, "locked": False}

    def deliver_webhook(self, kind: str, data: dict[str, Any]) -> None:
        """Sign as Svix signs and POST to the app's /api/webhooks/clerk, off Playwright's thread, as Clerk
        sends it after answering the browser. The outcome lands in `webhooks`."""
        body = json.dumps(event(kind, data))

        def send() -> None:
            try:
                answer = requests.post(
                    f"{self.origin}/api/webhooks/clerk",
                    data=body,
                    headers=signed_headers(body, secret=self.webhook_secret),
                    timeout=15,
                )
                outcome: int | str = answer.status_code
            except requests.RequestException as error:
                outcome = repr(error)
            with self._lock:
                self.webhooks.append((kind, outcome))

        threading.Thread(target=send, daemon=True).start()

    def _update_metadata(self, body: dict[str, str]) -> tuple[int, Any]:
        """`PATCH /v1/me/metadata` as clerk-js sends it (form-encoded, `unsafe_metadata` a JSON string): a deep
        merge; Clerk answers the user (and the client), and tells the app with `user.updated`."""
        if unknown := sorted(set(body) - {"unsafe_metadata"}):
            return self._error(422, "form_param_unknown", f"{unknown[0]} is not a valid parameter for this request.")
        try:
            change = json.loads(body.get("unsafe_metadata", ""))
        except ValueError:
            change = None
        if not isinstance(change, dict):
            return self._error(422, "form_param_format_invalid", "unsafe_metadata must be a JSON object.")
        if self.refuse_metadata:
            return self._error(422, "form_param_value_invalid", "unsafe_metadata could not be saved.")
        self.metadata_updates.append(change)
        self.unsafe_metadata = merge_metadata(self.unsafe_metadata, change)
        self.user_updated_at = max(_ms(), self.user_updated_at + 1)  # the user changed, not the client
        self.deliver_webhook("user.updated", self.webhook_user())
        return self._wrap(self._user_json())

    def mint(self) -> str:
        now = int(time.time())
        self.tokens_minted += 1
        return self.minter.mint(
            self.user["id"],
            sid=self.session["id"],
            iat=now,
            nbf=now - 5,
            exp=now + self.token_seconds,
            azp=self.origin,
            headers={"typ": "JWT"},
        )

    def _session_json(self) -> dict[str, Any]:
        return {
            "object": "session",
            "id": self.session["id"],
            "status": "active",
            "expire_at": _ms() + 7 * 86_400_000,
            "abandon_at": _ms() + 30 * 86_400_000,
            "last_active_at": _ms(),
            "last_active_organization_id": None,
            "last_active_token": {"object": "token", "jwt": self.mint()},
            "actor": None,
            "tasks": None,
            "current_task": None,
            "factor_verification_age": [0, -1],
            "user": self._user_json(),
            "public_user_data": {
                "first_name": self.user["first_name"],
                "last_name": self.user["last_name"],
                "image_url": "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9",
                "has_image": False,
                "identifier": self.user["email"],
                "user_id": self.user["id"],
            },
            "created_at": self.session["created_at"],
            "updated_at": _ms(),
        }

    def client_json(self) -> dict[str, Any]:
        sessions = [self._session_json()] if self.session else []
        return {
            "object": "client",
            "id": "client_1",
            "sessions": sessions,
            "sign_in": self.sign_in,
            "sign_up": None,
            "last_active_session_id": self.session["id"] if self.session else None,
            "last_authentication_strategy": None,
            "cookie_expires_at": None,
            "captcha_bypass": False,
            "created_at": _ms() - 60_000,
            "updated_at": self.client_updated_at,
        }

    def _sign_in_json(self, status: str, verification: dict[str, Any] | None = None) -> dict[str, Any]:
        email_id = "idn_" + self.user["id"].removeprefix("user_")
        return {
            "object": "sign_in_attempt",
            "id": "sia_1",
            "status": status,
            "identifier": self.user["email"],
            "supported_identifiers": ["email_address"],
            "supported_first_factors": [
                {"strategy": "email_code", "safe_identifier": self.user["email"], "email_address_id": email_id}
            ],
            "supported_second_factors": None,
            "first_factor_verification": verification,
            "second_factor_verification": None,
            "user_data": {"first_name": self.user["first_name"], "last_name": self.user["last_name"]},
            "created_session_id": self.session["id"] if status == "complete" else None,
            "abandon_at": _ms() + 86_400_000,
        }

    def _wrap(self, resource: Any, status: int = 200) -> tuple[int, dict[str, Any]]:
        return status, {"response": resource, "client": self.client_json()}

    def _error(self, status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
        return status, {
            "errors": [{"message": message, "long_message": message, "code": code}],
            "clerk_trace_id": uuid.uuid4().hex,
        }

    def _answer(self, method: str, path: str, body: dict[str, str]) -> tuple[int, Any]:
        if path == "/environment":
            return 200, environment()
        if path == "/client" and method in ("GET", "PUT", "POST"):
            return 200, {"response": self.client_json() if (self.session or self.sign_in) else None, "client": None}
        if path == "/client" and method == "DELETE":
            self.session = self.sign_in = None
            return 200, {"response": {"object": "client", "id": "client_1", "deleted": True}, "client": None}
        if path == "/client/sessions" and method == "DELETE":  # signOut(): end every session of the client
            self.session = self.sign_in = None
            return self._wrap(self.client_json())
        if path == "/client/sign_ins" and method == "POST":
            if body.get("identifier", "").lower() != self.user["email"]:
                return self._error(422, "form_identifier_not_found", "Couldn't find your account.")
            self.sign_in = self._sign_in_json("needs_first_factor")
            return self._wrap(self.sign_in)
        if path == "/client/sign_ins/sia_1/prepare_first_factor":
            verification = {
                "status": "unverified",
                "strategy": "email_code",
                "attempts": 0,
                "expire_at": _ms() + 600_000,
            }
            self.sign_in = self._sign_in_json("needs_first_factor", verification)
            return self._wrap(self.sign_in)
        if path == "/client/sign_ins/sia_1/attempt_first_factor":
            if body.get("code") != EMAIL_CODE:
                return self._error(422, "form_code_incorrect", "Incorrect code")
            self.session = {"id": f"sess_{uuid.uuid4().hex[:24]}", "created_at": _ms()}
            verification = {"status": "verified", "strategy": "email_code", "attempts": 1, "expire_at": _ms() + 600_000}
            completed = self._sign_in_json("complete", verification)
            self.sign_in = None
            return self._wrap(completed)
        if self.session and path.startswith(f"/client/sessions/{self.session['id']}"):
            action = path.removeprefix(f"/client/sessions/{self.session['id']}")
            if action == "/tokens":
                return 200, {"object": "token", "jwt": self.mint()}
            if action in ("/touch", ""):
                return self._wrap(self._session_json())
            if action in ("/remove", "/end"):
                ended = {**self._session_json(), "status": "removed"}
                self.session = None
                return self._wrap(ended)
        if path.startswith("/client/sessions/"):
            return self._error(404, "resource_not_found", "Resource not found")
        if path == "/me" and self.session:
            return self._wrap(self._user_json())
        if path == "/me/metadata" and method == "PATCH" and self.session:
            return self._update_metadata(body)
        if path.startswith("/me/") and self.session:
            return self._wrap({"data": [], "total_count": 0} if method == "GET" else {})
        self.unknown.append(f"{method} {path}")
        return self._error(404, "resource_not_found", "Resource not found")

    def __repr__(self) -> str:  # shown by pytest when an assertion about it fails
        return f"FrontendAPI(calls={json.dumps(self.calls[-20:])}, unknown={self.unknown}, webhooks={self.webhooks})"
