"""Static files named by their content, so browsers keep them for a year and never ask again.

`url_for('static', filename=…)` adds `?v=<fingerprint>`: the first 12 hex digits of the file's SHA-256.
A request whose `v` is the file's current fingerprint is answered `Cache-Control: public,
max-age=31536000, immutable`: a change to the file changes every URL that names it, so nothing stale
can be kept. Any other request keeps Flask's `no-cache` (revalidated with ETag and Last-Modified): no
`v` at all, or another release's `v`. The second happens in a rolling deploy, when a page from a newer
instance asks an older one for a file it only has in its old version: pinning that old content for a
year under the new URL is exactly what must not happen.

Fingerprints are computed on first use and recomputed when a file's size or modification time
changes (an edit under `flask run`). nginx keeps the immutable answers (deploy/nginx/shop.conf).
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from werkzeug.security import safe_join

VERSION_ARG = "v"
FINGERPRINT_LENGTH = 12  # hex digits: 48 bits, no collision between two versions of one file in practice
IMMUTABLE = "public, max-age=31536000, immutable"  # a year, the most any cache keeps anything


class Fingerprints:
    """The fingerprint of each file under one folder, kept while the file's size and mtime stay the same."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = str(folder)
        self._known: dict[str, tuple[tuple[int, int], str]] = {}
        self._lock = threading.Lock()

    def of(self, filename: str) -> str | None:
        """`filename`'s fingerprint; None for anything that is not a file under the folder (a path that
        leaves it, a directory, a NUL, a file that is missing): its URL gets no version."""
        path = safe_join(self.folder, filename)
        if path is None:
            return None
        try:
            status = os.stat(path)
        except (OSError, ValueError):  # missing, unreadable, or a name the OS refuses (NUL)
            return None
        if not stat.S_ISREG(status.st_mode):
            return None
        seen = (status.st_mtime_ns, status.st_size)
        known = self._known.get(filename)
        if known is not None and known[0] == seen:
            return known[1]
        try:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:FINGERPRINT_LENGTH]
        except OSError:
            return None
        with self._lock:  # bounded: only files that exist under the folder are ever entered
            self._known[filename] = (seen, digest)
        return digest


def register(app: Flask) -> None:
    if not app.static_folder:
        return
    fingerprints = Fingerprints(app.static_folder)
    app.extensions["static_fingerprints"] = fingerprints

    @app.url_defaults
    def add_fingerprint(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint != "static" or VERSION_ARG in values:
            return
        filename = values.get("filename")
        if isinstance(filename, str) and (version := fingerprints.of(filename)):
            values[VERSION_ARG] = version  # not a rule argument: url_for puts it in the query string

    @app.after_request
    def cache_fingerprinted(response: Response) -> Response:
        if request.endpoint != "static" or response.status_code not in (200, 304):
            return response
        version = request.args.get(VERSION_ARG)
        filename = (request.view_args or {}).get("filename")
        if version and isinstance(filename, str) and version == fingerprints.of(filename):
            response.headers["Cache-Control"] = IMMUTABLE
            response.headers.pop("Expires", None)
        return response
