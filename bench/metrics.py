"""What prometheus_client's multiprocess mode costs: per observation on the request path, and per scrape.

    .venv/bin/python bench/metrics.py [--workers 3] [--routes 40] [--statuses 3]

Each of `--workers` processes records requests for routes x statuses label sets into a fresh
PROMETHEUS_MULTIPROC_DIR, as gunicorn's workers do; then the scrape (collect + render) is timed in
this process, as the worker answering /metrics does it (the database's figures not included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER = """
import time
from shop import metrics
routes, statuses, n = {routes}, {statuses}, 20000
started = time.perf_counter()
for i in range(n):
    metrics.REQUEST_SECONDS.labels("GET", "/products/<slug>", "200").observe(0.012)
per_observation = (time.perf_counter() - started) / n
for route in range(routes):
    for status in range(statuses):
        metrics.REQUEST_SECONDS.labels("GET", f"/route/{{route}}", str(200 + status)).observe(0.012)
        metrics.record_webhook_delivery("clerk", "user.updated", "processed")
print(per_observation)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--routes", type=int, default=40)
    parser.add_argument("--statuses", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        code = WORKER.format(routes=args.routes, statuses=args.statuses)
        observations = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
                ).stdout
            )
            for _ in range(args.workers)
        ]
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        timings, size = [], 0
        for _ in range(10):
            started = time.perf_counter()
            size = len(generate_latest(registry))
            timings.append(time.perf_counter() - started)
    label_sets = args.routes * args.statuses + 1
    print(f"observe (histogram, multiprocess): {statistics.median(observations) * 1e6:.1f} µs per request")
    print(
        f"scrape: {args.workers} workers x {label_sets} label sets: median {statistics.median(timings) * 1000:.0f} ms, "
        f"{size / 1024:.0f} KiB of text"
    )


if __name__ == "__main__":
    main()
