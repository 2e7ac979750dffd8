"""The development tools (devtools/: the Clerk and Stripe stand-ins, the embedded PostgreSQL) stay
out of production: importing `shop` and building a production app loads no devtools module, while
a development app with the stand-ins on loads them.

Each case runs in a fresh Python (`python -c`), since this process has long imported devtools."""

from __future__ import annotations

import json
import subprocess
import sys

from shop import PROJECT_ROOT
from tests.conftest import database_settings

# Builds the app from the environment, as wsgi.py does (without its .env), serves a few pages through
# the test client, and reports which devtools modules this Python has loaded by then.
PROBE = """
import json, sys
import shop
before = sorted(name for name in sys.modules if name.partition(".")[0] == "devtools")
app = shop.create_app()
statuses = [app.test_client().get(path).status_code for path in sys.argv[1:]]
print(json.dumps({
    "after_import": before,
    "after_app": sorted(name for name in sys.modules if name.partition(".")[0] == "devtools"),
    "production": app.config["SHOP_PRODUCTION"],
    "statuses": statuses,
}))
"""
PAGES = ["/", "/sign-in", "/api/health", "/cart"]


def probe(env: dict[str, str], *pages: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *pages],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_a_production_app_loads_no_devtools_module(database_url, tmp_path):
    seen = probe(
        {**database_settings(database_url), "SECRET_KEY": "production-secret", "MAIL_DIR": str(tmp_path)}, *PAGES
    )
    assert seen["production"] is True
    assert all(status < 500 for status in seen["statuses"]), seen["statuses"]
    assert seen["after_import"] == []
    assert seen["after_app"] == []


def test_a_development_app_loads_the_standins_it_turns_on(database_url, tmp_path):
    seen = probe(
        {
            **database_settings(database_url),
            "FLASK_DEBUG": "1",  # as `make run` (.flaskenv)
            "SHOP_DEV_AUTH": "auto",
            "SECRET_KEY": "development-secret",
            "SHOP_DEV_CLERK_DIR": str(tmp_path / "dev-clerk"),
            "SHOP_DEV_STRIPE_DIR": str(tmp_path / "dev-stripe"),
            "MAIL_DIR": str(tmp_path / "mail"),
        }
    )
    assert seen["production"] is False
    assert seen["after_import"] == []
    assert {"devtools", "devtools.clerk_standin", "devtools.stripe_standin"} <= set(seen["after_app"])
    assert "devtools.embedded_postgres" not in seen["after_app"]  # DATABASE_URL is set: no embedded server
