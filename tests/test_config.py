"""Settings are validated at start, with one clear sentence per problem."""

import tempfile
from pathlib import Path

import pytest

from shop import config, create_app
from shop.config import ConfigError, normalize_database_url
from tests.support import vector

PK = "pk_test_Zm9vLWJhci0xMy5jbGVyay5hY2NvdW50cy5kZXYk"


def load(env, production=False, tmp_path=None):
    return config.load(env, production=production, instance_path=tmp_path or Path(tempfile.mkdtemp()))


@pytest.mark.parametrize(
    "url",
    ["postgres://u:p@h/db", "postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"],
)
def test_database_url_schemes(url):
    assert normalize_database_url(url) == "postgresql+psycopg://u:p@h/db"


def test_production_needs_database_and_secret_key():
    with pytest.raises(ConfigError) as error:
        load({}, production=True)
    assert len(error.value.problems) == 2
    assert any(p.startswith("DATABASE_URL is not set") for p in error.value.problems)
    assert any(p.startswith("SECRET_KEY is not set") for p in error.value.problems)


def test_development_generates_and_keeps_a_secret_key(tmp_path):
    first = load({}, tmp_path=tmp_path)["SECRET_KEY"]
    assert len(first) > 40
    assert load({}, tmp_path=tmp_path)["SECRET_KEY"] == first


def test_every_bad_setting_is_named():
    env = {
        "DATABASE_URL": "mysql://x",
        "CLERK_PUBLISHABLE_KEY": "pk_nope",
        "CLERK_SECRET_KEY": "secret",
        "CLERK_WEBHOOK_SECRET": "whsec_ok+/ whsec_!!!",
        "CLERK_JWT_KEY": "not a pem",
        "CLERK_AUTHORIZED_PARTIES": "https://shop.example.com,shop.example.com",
        "CLERK_API_URL": "ftp://api",
        "CLERK_CLOCK_SKEW_SECONDS": "lots",
    }
    with pytest.raises(ConfigError) as error:
        load(env)
    names = [problem.split()[0] for problem in error.value.problems]
    assert names == [
        "DATABASE_URL",
        "CLERK_PUBLISHABLE_KEY",
        "CLERK_SECRET_KEY",
        "CLERK_WEBHOOK_SECRET",
        "CLERK_JWT_KEY",
        "CLERK_AUTHORIZED_PARTIES",
        "CLERK_API_URL",
        "CLERK_CLOCK_SKEW_SECONDS",
    ]
    assert "secret 2" in error.value.problems[3]


def test_clerk_settings_are_read(tmp_path):
    pem = vector("clerk-javascript_session_jwt_vectors.json")["pemEncodedPublicKey"]
    settings = load(
        {
            "NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY": PK,
            "CLERK_SECRET_KEY": "sk_test_abc",
            "CLERK_WEBHOOK_SIGNING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_dGhpcw==",
            "CLERK_JWT_KEY": pem.replace("\n", "\\n"),
            "CLERK_AUTHORIZED_PARTIES": "https://shop.example.com/, http://localhost:5000",
        },
        tmp_path=tmp_path,
    )
    assert settings["CLERK_FRONTEND_API"] == "foo-bar-13.clerk.accounts.dev"
    assert len(settings["CLERK_WEBHOOK_SECRETS"]) == 2
    assert settings["CLERK_JWT_KEY"].startswith("-----BEGIN PUBLIC KEY-----\n")
    assert settings["CLERK_AUTHORIZED_PARTIES"] == ["https://shop.example.com", "http://localhost:5000"]
    assert settings["CLERK_API_URL"] == "https://api.clerk.com/v1"
    assert settings["CLERK_CLOCK_SKEW_SECONDS"] == 5


def test_test_and_live_keys_do_not_mix():
    with pytest.raises(ConfigError, match="different instances"):
        load({"CLERK_PUBLISHABLE_KEY": PK, "CLERK_SECRET_KEY": "sk_live_abc"})


def test_dev_auth_refuses_live_keys_and_production():
    with pytest.raises(ConfigError, match="live Clerk secret key"):
        load({"SHOP_DEV_AUTH": "1", "CLERK_SECRET_KEY": "sk_live_abc"})
    with pytest.raises(ConfigError, match="SHOP_DEV_AUTH"):
        load({"SHOP_DEV_AUTH": "1", "DATABASE_URL": "postgres://h/db", "SECRET_KEY": "x"}, production=True)


def test_wsgi_refuses_to_start_with_one_sentence_per_problem(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        env={"PATH": "/usr/bin:/bin", "CLERK_SECRET_KEY": "oops", "DATABASE_URL": "postgres://h/db"},
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert result.returncode == 1
    assert "The shop cannot start:" in result.stderr
    assert "CLERK_SECRET_KEY is not valid" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_database_url_the_embedded_postgres_is_used(database_url):
    app = create_app({"TESTING": True, "SECRET_KEY": "x"})
    assert "host=" in app.config["SQLALCHEMY_DATABASE_URI"]
    assert "/instance/pgdata" in app.config["SQLALCHEMY_DATABASE_URI"].replace("%2F", "/")
