"""`make serve-proxy`: nginx (deploy/nginx/) in front of gunicorn (gunicorn.conf.py), the production topology.

Both run as the current user: nginx gets a prefix directory of its own under the temporary
directory (its configuration, pid file, logs, body and proxy buffers), so no root and no system
configuration are involved. GUNICORN_BIND (default 127.0.0.1:8000) is where gunicorn listens
and nginx proxies to; PROXY_LISTEN (default 127.0.0.1:8080) is where nginx listens. Ctrl-C stops both.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NGINX = Path("/usr/sbin/nginx")  # Debian's nginx package
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_UPSTREAM = "127.0.0.1:8000"
DEFAULT_STATIC_CACHE = "/var/lib/nginx/shop-static"  # Debian's nginx owns /var/lib/nginx


def write_nginx_config(prefix: Path, *, listen: str, upstream: str) -> Path:
    """deploy/nginx/*.conf copied into `prefix`, listening on `listen` and proxying to `upstream`."""
    for directory in ("logs", "temp"):
        (prefix / directory).mkdir(parents=True, exist_ok=True)
    site = (HERE / "nginx" / "shop.conf").read_text()
    for shipped, wanted in (
        (f"listen {DEFAULT_LISTEN};", f"listen {listen};"),
        (f"server {DEFAULT_UPSTREAM};", f"server {upstream};"),
        (f"proxy_cache_path {DEFAULT_STATIC_CACHE} ", f"proxy_cache_path {prefix / 'temp' / 'static-cache'} "),
    ):
        if shipped not in site:
            raise RuntimeError(f"deploy/nginx/shop.conf no longer says {shipped!r}; update deploy/proxy.py")
        site = site.replace(shipped, wanted)
    main = (HERE / "nginx" / "nginx.conf").read_text()
    if os.geteuid() == 0:
        # Started as root, nginx hands its workers to `nobody`, who could not use the buffers here.
        main = f"user {pwd.getpwuid(0).pw_name};\n" + main
    (prefix / "shop.conf").write_text(site)
    (prefix / "nginx.conf").write_text(main)
    return prefix / "nginx.conf"


def nginx_command(prefix: Path) -> list[str]:
    return [str(NGINX), "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "logs" / "error.log")]


def wait_for_port(address: str, process: subprocess.Popen, what: str, seconds: float = 30) -> None:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} stopped (exit {process.returncode})")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {address} within {seconds:.0f} s")


@contextmanager
def nginx(prefix: Path, *, listen: str, upstream: str) -> Iterator[subprocess.Popen]:
    """nginx in the foreground with its files under `prefix`, until the block ends."""
    write_nginx_config(prefix, listen=listen, upstream=upstream)
    subprocess.run([*nginx_command(prefix), "-t", "-q"], check=True)  # noqa: S603  (our own command line)
    process = subprocess.Popen([*nginx_command(prefix), "-g", "daemon off;"])  # noqa: S603
    try:
        wait_for_port(listen, process, "nginx")
        yield process
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: answers in flight are finished
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    if not NGINX.exists():
        sys.exit("nginx is not installed (/usr/sbin/nginx): apt-get install nginx")
    upstream = os.environ.get("GUNICORN_BIND") or DEFAULT_UPSTREAM
    listen = os.environ.get("PROXY_LISTEN") or DEFAULT_LISTEN
    gunicorn = [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", upstream, "wsgi:app"]
    server = subprocess.Popen(gunicorn, cwd=ROOT)  # noqa: S603  (our own command line)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        wait_for_port(upstream, server, "gunicorn", seconds=60)
        with (
            tempfile.TemporaryDirectory(prefix="shop-nginx-") as prefix,
            nginx(Path(prefix), listen=listen, upstream=upstream),
        ):
            print(
                f"serve-proxy: nginx on http://{listen} -> gunicorn on {upstream} (files in {prefix}); "
                "Ctrl-C stops both"
            )
            server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
