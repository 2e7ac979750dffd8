"""Settings: read once from the environment, validated at start, one clear sentence per problem."""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import make_url

from shop.clerk import keys
from shop.generated_secrets import generated_once

log = logging.getLogger(__name__)

DEFAULT_CLERK_API_URL = "https://api.clerk.com/v1"
WEBHOOK_MAX_BYTES = 1024 * 1024
# Flask's request limits, for the whole app (the webhook route raises its own cap to WEBHOOK_MAX_BYTES).
# A body announced larger is refused 413 before a byte of it is read; a chunked one, as soon as it
# goes past. The shop's largest form (an admin product, 5,000 characters of description) is far
# below these; staying under Werkzeug's 500 KB spill threshold means no part ever goes to disk.
REQUEST_MAX_BYTES = 256 * 1024
FORM_MEMORY_MAX_BYTES = 64 * 1024  # the fields of one form, held in memory
FORM_MAX_PARTS = 100  # multipart parts in one form
TRUE_WORDS = {"1", "true", "yes", "on"}
MIN_METRICS_TOKEN_LENGTH = 16
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"  # gunicorn's own default for the same setting


class ConfigError(Exception):
    """Settings that cannot work. Its message lists every problem, one sentence each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def normalize_database_url(url: str) -> str:
    """Accept `postgres://`, `postgresql://` and `postgresql+psycopg://`; always use psycopg 3."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ValueError(scheme)
    return f"postgresql+psycopg://{rest}"


def without_pooler_flag(url: str) -> tuple[str, bool]:
    """Whether the URL goes through a transaction-mode pooler, and the URL libpq will accept.

    Neon's pooled hosts contain `-pooler`; Prisma-style URLs say `?pgbouncer=true` (a flag
    libpq does not know, so it is removed). `sslmode` and every other parameter pass through.
    """
    parsed = make_url(url)
    flag = str(parsed.query.get("pgbouncer", "")).lower() == "true"
    if "pgbouncer" in parsed.query:
        parsed = parsed.difference_update_query(["pgbouncer"])
    return parsed.render_as_string(hide_password=False), flag or "-pooler" in (parsed.host or "")


def describe_database_url(url: str) -> str:
    """The URL without its password, for logs."""
    return make_url(url).render_as_string(hide_password=True)


def _first(env: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = (env.get(name) or "").strip()
        if value:
            return value
    return ""


def _development_secret_key(instance_path: Path) -> str:
    """Generated once and kept in instance/, so sessions survive restarts in development."""
    return generated_once(instance_path / "secret_key", lambda: secrets.token_urlsafe(48))


def load(env: Mapping[str, str], *, production: bool, instance_path: Path) -> dict[str, Any]:
    """Turn the environment into Flask config, or raise ConfigError naming every problem.

    One loader per area; each adds its settings and appends its problems, in this order (the order
    the problems are reported in)."""
    problems: list[str] = []
    settings: dict[str, Any] = {
        "SHOP_PRODUCTION": production,
        "MAX_CONTENT_LENGTH": REQUEST_MAX_BYTES,
        "MAX_FORM_MEMORY_SIZE": FORM_MEMORY_MAX_BYTES,
        "MAX_FORM_PARTS": FORM_MAX_PARTS,
    }
    _load_database(env, production, settings, problems)
    _load_security(env, production, instance_path, settings, problems)
    _load_clerk_keys(env, production, settings, problems)
    _load_webhooks(env, production, settings, problems)
    _load_clerk_client(env, production, settings, problems)
    _load_metrics(env, production, settings, problems)
    _load_clerk_standin(env, production, settings, problems)
    _load_payments(env, production, settings, problems)
    _load_checkout_options(env, settings, problems)
    _load_stripe_standin(env, production, settings, problems)
    _load_mail(env, production, settings, problems)
    if problems:
        raise ConfigError(problems)
    return settings


def _load_database(env: Mapping[str, str], production: bool, settings: dict[str, Any], problems: list[str]) -> None:
    """PostgreSQL: DATABASE_URL (unset in development: the embedded one), and DATABASE_URL_DIRECT."""
    database_url = _first(env, "DATABASE_URL")
    if database_url:
        try:
            settings["DATABASE_URL"] = normalize_database_url(database_url)
        except ValueError:
            problems.append(
                "DATABASE_URL must start with postgres://, postgresql:// or postgresql+psycopg://; "
                "unset it to use the embedded PostgreSQL."
            )
    elif production:
        problems.append(
            "DATABASE_URL is not set: production needs a PostgreSQL URL (the embedded database is for development)."
        )
    else:
        settings["DATABASE_URL"] = None  # the factory starts the embedded PostgreSQL

    # What needs a whole PostgreSQL session (migrations, the sync's advisory lock) cannot have one
    # through a transaction-mode pooler; this URL reaches the server directly. Setting it also says
    # that DATABASE_URL is pooled.
    direct_url = _first(env, "DATABASE_URL_DIRECT")
    settings["DATABASE_URL_DIRECT"] = None
    if direct_url:
        try:
            settings["DATABASE_URL_DIRECT"] = normalize_database_url(direct_url)
        except ValueError:
            problems.append("DATABASE_URL_DIRECT must start with postgres://, postgresql:// or postgresql+psycopg://.")
        if not database_url:
            problems.append("DATABASE_URL_DIRECT is set without DATABASE_URL: set both, or neither.")


def _load_security(
    env: Mapping[str, str], production: bool, instance_path: Path, settings: dict[str, Any], problems: list[str]
) -> None:
    """Sessions and the proxy in front: SECRET_KEY (generated once in development), FORWARDED_ALLOW_IPS."""
    # The peers whose X-Forwarded-For and X-Forwarded-Proto are believed: the proxy in front (nginx
    # on this machine by default). gunicorn reads the same variable for the scheme.
    forwarders = _first(env, "FORWARDED_ALLOW_IPS") or DEFAULT_FORWARDED_ALLOW_IPS
    settings["FORWARDED_ALLOW_IPS"] = []
    for item in (part.strip() for part in forwarders.split(",") if part.strip()):
        try:
            settings["FORWARDED_ALLOW_IPS"].append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            problems.append(
                f"FORWARDED_ALLOW_IPS has {item!r}, which is not an IP address or network (like 10.0.0.0/8)."
            )

    secret_key = _first(env, "SECRET_KEY")
    if secret_key:
        settings["SECRET_KEY"] = secret_key
    elif production:
        problems.append(
            'SECRET_KEY is not set: production needs one (python -c "import secrets; print(secrets.token_hex(32))").'
        )
    else:
        settings["SECRET_KEY"] = _development_secret_key(instance_path)


def _load_clerk_keys(env: Mapping[str, str], production: bool, settings: dict[str, Any], problems: list[str]) -> None:
    """The Clerk instance: its publishable key (and the Frontend API host in it) and its secret key."""
    publishable_key = _first(env, "CLERK_PUBLISHABLE_KEY", "NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY")
    settings["CLERK_PUBLISHABLE_KEY"] = publishable_key or None
    settings["CLERK_FRONTEND_API"] = None
    if publishable_key:
        try:
            settings["CLERK_FRONTEND_API"] = keys.frontend_api_host(publishable_key)
        except keys.InvalidKey as exc:
            problems.append(
                f"CLERK_PUBLISHABLE_KEY is not valid: {exc}; copy it from Clerk's dashboard, Configure → API keys."
            )

    secret = _first(env, "CLERK_SECRET_KEY")
    settings["CLERK_SECRET_KEY"] = secret or None
    if secret:
        try:
            keys.check_secret_key(secret)
        except keys.InvalidKey as exc:
            problems.append(f"CLERK_SECRET_KEY is not valid: {exc}; copy it from Clerk's dashboard, API keys.")
    if publishable_key and secret and keys.is_live(publishable_key) != keys.is_live(secret):
        problems.append(
            "CLERK_PUBLISHABLE_KEY and CLERK_SECRET_KEY belong to different instances (one test, one live)."
        )


def _load_webhooks(env: Mapping[str, str], production: bool, settings: dict[str, Any], problems: list[str]) -> None:
    """The webhook endpoints: their body cap, and Clerk's signing secrets (Stripe's are read with payments)."""
    settings["WEBHOOK_MAX_BYTES"] = WEBHOOK_MAX_BYTES
    webhook_secrets = _first(env, "CLERK_WEBHOOK_SECRET", "CLERK_WEBHOOK_SIGNING_SECRET").split()
    for position, webhook_secret in enumerate(webhook_secrets, start=1):
        try:
            keys.check_webhook_secret(webhook_secret)
        except keys.InvalidKey as exc:
            problems.append(
                f"CLERK_WEBHOOK_SECRET (secret {position}) is not valid: {exc}; "
                "copy the Signing Secret from Clerk's dashboard, Webhooks → your endpoint."
            )
    settings["CLERK_WEBHOOK_SECRETS"] = webhook_secrets


def _load_clerk_client(env: Mapping[str, str], production: bool, settings: dict[str, Any], problems: list[str]) -> None:
    """How the shop checks Clerk's tokens and calls Clerk: the networkless key, the parties allowed in
    `azp`, the Backend API URL, and the leeway, cooldown and back-off times."""
    jwt_key = _first(env, "CLERK_JWT_KEY")
    settings["CLERK_JWT_KEY"] = None
    if jwt_key:
        try:
            settings["CLERK_JWT_KEY"] = keys.normalize_pem(jwt_key)
        except keys.InvalidKey as exc:
            problems.append(f"CLERK_JWT_KEY is not valid: {exc}; copy the PEM from Clerk's dashboard, API keys.")

    parties = [p.strip().rstrip("/") for p in _first(env, "CLERK_AUTHORIZED_PARTIES").split(",") if p.strip()]
    for party in parties:
        parts = urlsplit(party)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            problems.append(
                f"CLERK_AUTHORIZED_PARTIES has {party!r}, which is not an origin like https://shop.example.com."
            )
    settings["CLERK_AUTHORIZED_PARTIES"] = parties

    api_url = _first(env, "CLERK_API_URL") or DEFAULT_CLERK_API_URL
    if urlsplit(api_url).scheme not in ("http", "https"):
        problems.append(f"CLERK_API_URL must be an http(s) URL such as {DEFAULT_CLERK_API_URL}.")
    settings["CLERK_API_URL"] = api_url.rstrip("/")

    seconds = [
        ("CLERK_CLOCK_SKEW_SECONDS", int, "5", 300, "a whole number of seconds between 0 and 300."),
        ("CLERK_JWKS_COOLDOWN_SECONDS", float, "30", 3600, "a number of seconds between 0 and 3600."),
        ("CLERK_API_BACKOFF_SECONDS", float, "0.5", 60, "a number of seconds between 0 and 60."),
        # Handshake nonces resolved per window and process (shop.clerk.handshake.NonceBudget).
        ("CLERK_HANDSHAKE_NONCE_CAP", int, "10", 10_000, "a whole number of calls between 0 and 10000."),
        ("CLERK_HANDSHAKE_NONCE_WINDOW_SECONDS", float, "10", 3600, "a number of seconds between 0 and 3600."),
    ]
    for name, kind, default, most, expected in seconds:
        try:
            settings[name] = kind(_first(env, name) or default)
            if not 0 <= settings[name] <= most:
                raise ValueError
        except ValueError:
            problems.append(f"{name} must be {expected}")


def _load_metrics(env: Mapping[str, str], production: bool, settings: dict[str, Any], problems: list[str]) -> None:
    """GET /metrics: on only with a METRICS_TOKEN long enough to be a secret."""
    metrics_token = _first(env, "METRICS_TOKEN")
    if metrics_token and (len(metrics_token) < MIN_METRICS_TOKEN_LENGTH or any(c.isspace() for c in metrics_token)):
        problems.append(
            f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_LENGTH} characters without spaces "
            '(python -c "import secrets; print(secrets.token_urlsafe(32))"); unset it to turn /metrics off.'
        )
    settings["METRICS_TOKEN"] = metrics_token or None


# Development tools (the package devtools/, beside shop/): each stand-in is on only outside
# production, and never beside a live key. The factory imports devtools only when one is on.


def _load_clerk_standin(
    env: Mapping[str, str], production: bool, settings: dict[str, Any], problems: list[str]
) -> None:
    """The local Clerk stand-in (SHOP_DEV_AUTH); after the Clerk keys, which "auto" looks at."""
    publishable_key = settings["CLERK_PUBLISHABLE_KEY"] or ""
    secret = settings["CLERK_SECRET_KEY"] or ""
    # "auto" (what .flaskenv sets for `make run`): the stand-in when no Clerk instance is configured.
    dev_auth_setting = _first(env, "SHOP_DEV_AUTH").lower()
    auto = dev_auth_setting == "auto"
    dev_auth = (not production and not publishable_key) if auto else dev_auth_setting in TRUE_WORDS
    if dev_auth and production:
        problems.append(
            "SHOP_DEV_AUTH=1 turns on the local Clerk stand-in, which is for development and tests only: unset it."
        )
    if dev_auth and secret.startswith("sk_live_"):
        problems.append("SHOP_DEV_AUTH=1 cannot be used with a live Clerk secret key (sk_live_…).")
    settings["SHOP_DEV_AUTH"] = dev_auth
    settings["SHOP_DEV_CLERK_DIR"] = _first(env, "SHOP_DEV_CLERK_DIR") or None


def _load_stripe_standin(
    env: Mapping[str, str], production: bool, settings: dict[str, Any], problems: list[str]
) -> None:
    """The local Stripe stand-in (SHOP_DEV_STRIPE); after payments, whose key "auto" looks at."""
    key = settings["STRIPE_SECRET_KEY"] or ""
    # Unset or "auto": the stand-in when no Stripe key is configured, in development and tests.
    setting = _first(env, "SHOP_DEV_STRIPE").lower() or "auto"
    standin = (not production and not key) if setting == "auto" else setting in TRUE_WORDS
    if standin and production:
        problems.append(
            "SHOP_DEV_STRIPE=1 turns on the local Stripe stand-in, which is for development only: unset it."
        )
    if standin and key.startswith(("sk_live_", "rk_live_")):
        problems.append("The local Stripe stand-in (SHOP_DEV_STRIPE) cannot be used with a live Stripe key.")
    settings["SHOP_DEV_STRIPE"] = standin
    settings["SHOP_DEV_STRIPE_DIR"] = _first(env, "SHOP_DEV_STRIPE_DIR") or None


def _load_payments(env: Mapping[str, str], production: bool, settings: dict[str, Any], problems: list[str]) -> None:
    """Stripe: the API key, the webhook signing secret(s), the API base (the stand-in: `_load_stripe_standin`)."""
    key = _first(env, "STRIPE_SECRET_KEY")
    if key and not key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
        problems.append(
            "STRIPE_SECRET_KEY must start with sk_test_, sk_live_ (or rk_… for a restricted key); "
            "copy it from Stripe's dashboard, Developers → API keys."
        )
    settings["STRIPE_SECRET_KEY"] = key or None
    webhook_secrets = _first(env, "STRIPE_WEBHOOK_SECRET").split()
    for position, secret in enumerate(webhook_secrets, start=1):
        if not secret.startswith("whsec_"):
            problems.append(
                f"STRIPE_WEBHOOK_SECRET (secret {position}) must start with whsec_; copy the signing secret "
                "from Stripe's dashboard, Developers → Webhooks → your endpoint."
            )
    settings["STRIPE_WEBHOOK_SECRETS"] = webhook_secrets
    api_base = _first(env, "STRIPE_API_BASE")
    if api_base and urlsplit(api_base).scheme not in ("http", "https"):
        problems.append("STRIPE_API_BASE must be an http(s) URL such as https://api.stripe.com.")
    settings["STRIPE_API_BASE"] = api_base.rstrip("/") or None


FALSE_WORDS = {"0", "false", "no", "off"}
TAX_BEHAVIORS = ("exclusive", "inclusive")


def _switch(env: Mapping[str, str], name: str, problems: list[str]) -> bool:
    """An on/off setting, off when unset; anything but 1/0, true/false, yes/no, on/off is a problem."""
    value = _first(env, name).lower()
    if value and value not in TRUE_WORDS | FALSE_WORDS:
        problems.append(f"{name} must be 1 (on) or 0 (off); unset, it is off.")
    return value in TRUE_WORDS


def _load_checkout_options(env: Mapping[str, str], settings: dict[str, Any], problems: list[str]) -> None:
    """What Stripe Checkout adds to the shop's prices (docs/payments.md, "Tax, shipping and discount codes"):
    STRIPE_AUTOMATIC_TAX (Stripe Tax, for shops registered with it), STRIPE_TAX_BEHAVIOR (whether the
    shop's prices include that tax), STRIPE_PROMOTION_CODES (codes entered on Stripe's page). All off by
    default: the shop then charges its prices and shipping, exactly as without them."""
    settings["STRIPE_AUTOMATIC_TAX"] = _switch(env, "STRIPE_AUTOMATIC_TAX", problems)
    behavior = _first(env, "STRIPE_TAX_BEHAVIOR").lower() or "exclusive"
    if behavior not in TAX_BEHAVIORS:
        problems.append(
            "STRIPE_TAX_BEHAVIOR must be exclusive (tax is added to the prices) or inclusive (prices include it)."
        )
        behavior = "exclusive"
    settings["STRIPE_TAX_BEHAVIOR"] = behavior
    settings["STRIPE_PROMOTION_CODES"] = _switch(env, "STRIPE_PROMOTION_CODES", problems)


def _load_mail(env: Mapping[str, str], production: bool, settings: dict[str, Any], problems: list[str]) -> None:
    """Where order e-mails go: MAIL_URL (smtp:// or smtps://), or SMTP_HOST and friends; unset in
    development, files under instance/mail/."""
    url = _first(env, "MAIL_URL")
    mail: dict[str, Any] | None = None
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            problems.append("MAIL_URL must look like smtp://user:password@host:587 or smtps://host:465.")
        else:
            try:
                port = parts.port
            except ValueError:
                port = None
                problems.append("MAIL_URL has a port that is not a number.")
            mail = {
                "host": parts.hostname,
                "port": port or (465 if parts.scheme == "smtps" else 587),
                "ssl": parts.scheme == "smtps",
                "starttls": parts.scheme == "smtp" and "starttls=0" not in parts.query,
                "username": unquote(parts.username or "") or None,
                "password": unquote(parts.password or "") or None,
            }
    elif _first(env, "SMTP_HOST"):
        try:
            port = int(_first(env, "SMTP_PORT") or "587")
        except ValueError:
            port = 587
            problems.append("SMTP_PORT must be a port number such as 587.")
        security = (_first(env, "SMTP_SECURITY") or "starttls").lower()
        if security not in ("starttls", "ssl", "none"):
            problems.append("SMTP_SECURITY must be starttls, ssl or none.")
        mail = {
            "host": _first(env, "SMTP_HOST"),
            "port": port,
            "ssl": security == "ssl",
            "starttls": security == "starttls",
            "username": _first(env, "SMTP_USERNAME") or None,
            "password": _first(env, "SMTP_PASSWORD") or None,
        }
    settings["MAIL_SMTP"] = mail
    settings["MAIL_FROM"] = _first(env, "MAIL_FROM") or "Shop <shop@localhost>"
    settings["MAIL_DIR"] = _first(env, "MAIL_DIR") or None  # the development mailbox; default instance/mail
    if mail is None and production:
        log.warning("No MAIL_URL or SMTP_HOST: order e-mails wait in the outbox until one is configured.")
    # The shop's public address, for the links in e-mails: an e-mail may be written where there is no
    # request to take a host from (`flask payments sweep`), and a request's Host is whatever the client sent.
    shop_url = _first(env, "SHOP_URL").rstrip("/")
    parts = urlsplit(shop_url)
    try:
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
        looks_right = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        looks_right = False
    if shop_url and (not looks_right or parts.username or parts.query or parts.fragment):
        problems.append("SHOP_URL must be the shop's public address, such as https://shop.example.com.")
    settings["SHOP_URL"] = shop_url or None
    if not shop_url and production:
        log.warning(
            "SHOP_URL is not set: e-mails link to the address of the request that wrote them, "
            "and those written by flask commands have no link."
        )
