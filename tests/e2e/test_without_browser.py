"""Without Chromium the browser tests are left out with one loud line: the run passes and says how to enable them."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_chromium_skips_the_browser_tests_in_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/e2e/test_mobile.py"],
        cwd=ROOT,
        # Not an xdist worker even when this test runs in one: it would take that worker's database.
        env={**_not_a_worker(os.environ), "CHROMIUM_PATH": str(ROOT / "no-such-chromium")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "BROWSER TESTS SKIPPED" in line]
    assert len(lines) == 1, result.stdout
    assert "no-such-chromium" in lines[0] and "apt-get install chromium" in lines[0] and "CHROMIUM_PATH" in lines[0]
    assert "2 deselected" in result.stdout and "failed" not in result.stdout


def _not_a_worker(environment: os._Environ[str]) -> dict[str, str]:
    return {name: value for name, value in environment.items() if not name.startswith("PYTEST_XDIST_")}
