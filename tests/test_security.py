"""Security headers on every response; production cookie flags; pooler-safe connections."""

import pytest
from itsdangerous import BadSignature

from shop import config
from shop.security import content_security_policy


def directives(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split("; ")}


@pytest.mark.parametrize("path", ["/sign-in", "/api/health", "/no-such-page", "/static/css/shop.css"])
def test_headers_on_every_response(client, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert directives(response)["frame-ancestors"] == ["'none'"]
    assert "Strict-Transport-Security" not in response.headers  # not in development or tests


def test_csp_allows_exactly_what_clerks_guide_lists(client):
    """A development instance (pk_test_): Clerk's hosts, Turnstile, Clerk's protection, and telemetry."""
    policy = directives(client.get("/sign-in"))
    assert policy["script-src"] == [
        "'self'",
        "https://clerk.shop.test",
        "https://challenges.cloudflare.com",
        "https://*.protect.clerk.com",
    ]
    assert policy["connect-src"] == [
        "'self'",
        "https://clerk.shop.test",
        "https://*.protect.clerk.com:*",
        "https://clerk-telemetry.com",
    ]
    assert policy["frame-src"] == ["https://challenges.cloudflare.com", "https://*.protect.clerk.com"]
    assert policy["img-src"] == ["'self'", "data:", "https://img.clerk.com"]
    assert policy["worker-src"] == ["'self'", "blob:"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["default-src"] == ["'self'"]
    assert "'unsafe-eval'" not in str(policy) and "'unsafe-inline'" not in policy["script-src"]


def test_csp_of_a_production_instance_sends_no_telemetry(make_app):
    live_key = "pk_live_Y2xlcmsuc2hvcC5leGFtcGxlLmNvbSQ"  # base64("clerk.shop.example.com$")
    app = make_app(CLERK_PUBLISHABLE_KEY=live_key)
    policy = directives(app.test_client().get("/sign-in"))
    assert policy["connect-src"] == ["'self'", "https://clerk.shop.example.com", "https://*.protect.clerk.com:*"]
    assert "https://clerk.shop.example.com" in policy["script-src"]


def test_csp_with_the_standin_allows_no_third_party(make_app, tmp_path):
    app = make_app(SHOP_DEV_AUTH="1", SHOP_DEV_CLERK_DIR=str(tmp_path))
    policy = directives(app.test_client().get("/sign-in"))
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-src"] == ["'none'"]


def test_production_sends_hsts_and_secure_cookies(make_app):
    app = make_app(TESTING=False, SECRET_KEY="prod-secret")
    assert app.config["SHOP_PRODUCTION"]
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_HTTPONLY"]
    response = app.test_client().get("/api/health")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_policy_string_is_well_formed():
    policy = content_security_policy("clerk.example.com")
    assert policy.count(";") == 10 and "  " not in policy


@pytest.mark.parametrize(
    ("url", "pooled", "kept"),
    [
        (
            "postgresql+psycopg://u:p@ep-cool-123-pooler.eu-central-1.aws.neon.tech/db?sslmode=require",
            True,
            "sslmode=require",
        ),
        ("postgresql+psycopg://u:p@db.example.com/db?pgbouncer=true&sslmode=verify-full", True, "sslmode=verify-full"),
        (
            "postgresql+psycopg://u:p@ep-cool-123.eu-central-1.aws.neon.tech/db?sslmode=require",
            False,
            "sslmode=require",
        ),
    ],
)
def test_transaction_pooler_detection(url, pooled, kept):
    cleaned, behind_pooler = config.without_pooler_flag(url)
    assert behind_pooler is pooled
    assert kept in cleaned and "pgbouncer" not in cleaned and ":p@" in cleaned


def test_pooled_url_turns_prepared_statements_off(make_app):
    app = make_app(DATABASE_URL="postgres://u:p@127.0.0.1:1/db?pgbouncer=true")
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["connect_args"]["prepare_threshold"] is None
    assert options["pool_pre_ping"] is True
    assert "pgbouncer" not in app.config["SQLALCHEMY_DATABASE_URI"]


def test_a_header_the_view_set_itself_is_kept_once(app):
    """The defaults fill in what a response lacks, whatever the case of the name it was set with."""

    @app.get("/_test/own-headers")
    def own_headers():
        return "", 200, {"x-frame-options": "SAMEORIGIN", "Content-Security-Policy": "default-src 'none'"}

    response = app.test_client().get("/_test/own-headers")
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers.getlist("Content-Security-Policy") == ["default-src 'none'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"  # the ones it did not set are added


def test_the_session_cookie_is_signed_with_the_current_key(app):
    """The session's signing serializer is built once per key: a new SECRET_KEY refuses cookies signed
    with the old one, and the old one listed in SECRET_KEY_FALLBACKS accepts them again."""
    interface = app.session_interface
    first = interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app) is first
    cookie = first.dumps({"csrf_token": "abc"})

    old_key, app.secret_key = app.secret_key, "a-new-secret-key-for-this-test"
    rotated = interface.get_signing_serializer(app)
    assert rotated is not first
    with pytest.raises(BadSignature):
        rotated.loads(cookie)

    app.config["SECRET_KEY_FALLBACKS"] = [old_key]
    assert interface.get_signing_serializer(app).loads(cookie) == {"csrf_token": "abc"}
