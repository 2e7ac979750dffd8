"""Real-browser tests: Playwright for Python driving Debian's Chromium (never a downloaded browser).

Without that Chromium the browser tests are left out (deselected), and the summary says so in one line.
Screenshots for docs/screenshots/ are written only with SHOP_SCREENSHOTS=1: they are tracked files,
which an ordinary test run must not rewrite.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import free_port
from tests.conftest import TOKENS
from tests.servers import gunicorn
from tests.support import TEST_PUBLISHABLE_KEY

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WRITE_SCREENSHOTS = os.environ.get("SHOP_SCREENSHOTS") == "1"
NO_BROWSER = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """No Chromium: leave every browser test out, rather than fail each or skip each with its own line."""
    if Path(CHROMIUM).exists():
        return
    left_out = [item for item in items if item.get_closest_marker("browser")]
    if left_out:
        items[:] = [item for item in items if not item.get_closest_marker("browser")]
        config.hook.pytest_deselected(items=left_out)
        config.stash[NO_BROWSER] = len(left_out)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and session.config.stash.get(NO_BROWSER, 0):
        session.exitstatus = pytest.ExitCode.OK  # only browser tests were asked for: skipped, not an error


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if count := config.stash.get(NO_BROWSER, 0):
        terminalreporter.write_line(
            f"BROWSER TESTS SKIPPED ({count}): no Chromium at {CHROMIUM}. Enable them with"
            " `apt-get install chromium` (Debian) or CHROMIUM_PATH=/path/to/chromium.",
            yellow=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                # navigator.webdriver false, as in a shopper's browser: clerk-js then sends its telemetry
                # (development instances), so the CSP tests see those requests too.
                "--disable-blink-features=AutomationControlled",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def real_clerk_js_server(database_url, tmp_path_factory) -> Iterator[str]:
    """gunicorn serving the app in production mode, Clerk configured for the fake Frontend API host
    (tests/e2e/frontend_api.py), for the tests against the real clerk-js: test_real_clerk_js.py's and
    test_marketing_opt_in.py's. One for the run: each of the two modules started its own (a start costs
    a second and a half), which its tests already shared one after the other; the database is emptied
    after each test as usual."""
    port = free_port()
    origin = f"http://localhost:{port}"
    with gunicorn(
        database_url,
        tmp_path_factory.mktemp("real-clerk-js") / "gunicorn.log",
        "--workers",
        "2",
        port=port,
        CLERK_PUBLISHABLE_KEY=TEST_PUBLISHABLE_KEY,
        CLERK_JWT_KEY=TOKENS.public_pem,
        CLERK_AUTHORIZED_PARTIES=origin,
        CLERK_CLOCK_SKEW_SECONDS="0",  # a token is refused the second it expires (the tests shorten lifetimes)
    ):
        yield origin


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def save_screenshot(page, name: str) -> None:
    """docs/screenshots/<name>.png of the whole page, when SHOP_SCREENSHOTS=1 asks for it."""
    if WRITE_SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def screenshot(page):
    return lambda name: save_screenshot(page, name)
