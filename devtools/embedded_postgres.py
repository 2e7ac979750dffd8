"""The embedded PostgreSQL used when no DATABASE_URL is set.

Kept in one small module so it can be swapped: the rest of the app only sees a URL.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import warnings
from pathlib import Path

log = logging.getLogger(__name__)
# Where `make run` keeps the data: the app's instance folder (beside shop/ and devtools/), pgdata/ in it.
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "instance" / "pgdata"


def start(data_dir: Path) -> str:
    """Start (or join) the PostgreSQL server whose data lives in `data_dir`; return its URL.

    pgserver shares one server between processes that ask for the same directory, so the
    Flask reloader's second process joins the first one's server. `cleanup_mode=None`
    leaves it running after we exit: the next start is instant and the data is kept
    (`make stop` stops it).
    """
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (containers): nothing the user can act on.
        warnings.simplefilter("ignore")
        import pgserver  # imported here: a deployment with DATABASE_URL never needs it

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # Processes starting at once (pytest-xdist's workers on a fresh machine) would each run initdb
    # on the same empty directory, and all but one fail: the first initialises, the rest join.
    with open(data_dir.parent / f"{data_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data_dir.mkdir(exist_ok=True)
        server = pgserver.get_server(data_dir, cleanup_mode=None)
    # pgserver answers `postgresql://postgres:@/postgres?host=<socket dir>`.
    return server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


def stop(data_dir: Path) -> bool:
    """Stop the server whose data lives in `data_dir`; False when none was running."""
    if not (data_dir / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # made at import, unseen by mypy

    # As root, pgserver runs PostgreSQL as its own `pgserver` user; pg_ctl must run as that user too.
    user = "pgserver" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "stop"], pgdata=data_dir, user=user)
    except subprocess.CalledProcessError:
        return False
    return True


def main() -> None:
    """`python -m devtools.embedded_postgres stop` (what `make stop` runs): no app is built, so nothing
    starts it first."""
    import sys

    if sys.argv[1:] != ["stop"]:
        sys.exit("usage: python -m devtools.embedded_postgres stop")
    data_dir = DEFAULT_DATA_DIR
    stopped = stop(data_dir)
    print(f"Stopped the embedded PostgreSQL in {data_dir}." if stopped else "The embedded PostgreSQL was not running.")


if __name__ == "__main__":
    main()
