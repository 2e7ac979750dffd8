"""The embedded PostgreSQL used when no DATABASE_URL is set.

Kept in one small module so it can be swapped: the rest of the app only sees a URL.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def start(data_dir: Path) -> str:
    """Start (or join) the PostgreSQL server whose data lives in `data_dir`; return its URL.

    pgserver shares one server between processes that ask for the same directory, so the
    Flask reloader's second process joins the first one's server. `cleanup_mode=None`
    leaves it running after we exit: the next start is instant and the data is kept.
    """
    import pgserver  # imported here: a deployment with DATABASE_URL never needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    # pgserver answers `postgresql://postgres:@/postgres?host=<socket dir>`.
    return server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
