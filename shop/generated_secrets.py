"""Development secrets made once and kept in a file, so restarts reuse them.

Ground floor: imports nothing of the shop, so config and the development tools can both use it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def generated_once(path: Path, make: Callable[[], str]) -> str:
    """A development secret made by `make` the first time, then kept in `path` (readable by its owner
    only), so restarts reuse it: the Flask secret, the stand-ins' keys and webhook secrets."""
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()
