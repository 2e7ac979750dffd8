"""Slow clients against bare gunicorn, then against nginx in front of it (the production topology).

    .venv/bin/python bench/slow_clients.py [--seconds 20]     # or: make bench-slow-clients

50 slow-header and 50 slow-body connections (tests/slow_clients.py: each sends one more header
line, or one more body byte, every second, and is reopened when the server drops it) while a
load balancer's health check GETs /api/health on a fresh connection every 50 ms. Prints, for each
topology, the share of checks answered 200 within 1 s, the median and p99 latency, and how many
slow connections the server dropped. gunicorn runs with the committed gunicorn.conf.py
(3 workers x 2 threads here), nginx with deploy/nginx/ (via deploy/proxy.py), both on 127.0.0.1.
The database (`bench_slow_clients` on the embedded PostgreSQL, or BENCH_DATABASE_URL, whose
`public` schema is EMPTIED) only answers the health check's SELECT 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, fresh_database, start_gunicorn  # noqa: E402
from deploy import proxy  # noqa: E402
from tests.slow_clients import HealthChecks, SlowClients  # noqa: E402


def measure(port: int, seconds: float) -> dict[str, float]:
    checks = HealthChecks()
    with SlowClients("127.0.0.1", port) as clients:
        checks.run("127.0.0.1", port, seconds)
    return {
        "checks": len(checks.latencies),
        "within_1s": checks.within(1.0),
        "median_ms": checks.percentile(0.5) * 1000,
        "p99_ms": checks.percentile(0.99) * 1000,
        "failed": checks.failures,
        "slow_opened": clients.opened,
        "slow_dropped": clients.dropped,
    }


def show(name: str, figures: dict[str, float]) -> None:
    print(
        f"{name:<16} checks {figures['checks']:>4}  200 within 1 s {figures['within_1s']:>7.1%}  "
        f"median {figures['median_ms']:>8.1f} ms  p99 {figures['p99_ms']:>8.1f} ms  failed {figures['failed']:>3}  "
        f"slow connections opened {figures['slow_opened']:>4}, dropped by the server {figures['slow_dropped']:>4}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each topology is measured")
    args = parser.parse_args()
    if not proxy.NGINX.exists():
        sys.exit("bench/slow_clients.py: nginx is not installed (/usr/sbin/nginx): apt-get install nginx")
    database_url, drop = fresh_database("bench_slow_clients")
    settings = {"DATABASE_URL": database_url, "SECRET_KEY": "bench-secret-key"}
    upstream_port, proxy_port = free_port(), free_port()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-slow-") as directory:
        server = start_gunicorn(settings, upstream_port, Path(directory) / "gunicorn.log")
        try:
            results["bare gunicorn"] = measure(upstream_port, args.seconds)
            prefix = Path(directory) / "nginx"
            with proxy.nginx(prefix, listen=f"127.0.0.1:{proxy_port}", upstream=f"127.0.0.1:{upstream_port}"):
                results["nginx + gunicorn"] = measure(proxy_port, args.seconds)
        finally:
            server.terminate()
            server.wait(timeout=30)
            drop()
    print(f"50 slow-header + 50 slow-body connections, /api/health every 50 ms, {args.seconds:.0f} s each:")
    for name, figures in results.items():
        show(name, figures)


if __name__ == "__main__":
    main()
