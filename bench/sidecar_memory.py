"""The sidecar's memory over time: `exporter serve --demo` (the sidecar watching the demo shop,
shipping its logs to a local Loki receiver) for an hour, with Loki down for 10 minutes in the
middle; its RSS sampled every 30 s, and the slope of a straight line through the samples after
the first 5 minutes (a leak reads as a steady climb, the history filling as a flat line).

    .venv/bin/python bench/sidecar_memory.py [--minutes 60] [--outage 10] [--every 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import free_port


def slope_mb_per_10_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per 10 minutes."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in points) / var * 600


def receiver(port: int, log: Path) -> subprocess.Popen[bytes]:
    """The strict in-test Loki receiver (tests/loki_receiver.py) as its own process."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.loki_receiver", str(port), "--lenient"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=Path(__file__).parent.parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--outage", type=float, default=10.0, help="minutes Loki is down")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sidecar-memory-"))
    port, demo, loki = free_port(), free_port(), free_port()
    env = {**os.environ, "EXPORTER_PORT": str(port), "EXPORTER_DEMO_PORT": str(demo),
           "EXPORTER_LOKI_URL": f"http://127.0.0.1:{loki}", "EXPORTER_LOG_STDOUT": "false",
           "EXPORTER_DATA_DIR": str(work / "data"), "EXPORTER_LOG_DIR": str(work / "logs")}
    loki_process = receiver(loki, work / "loki.log")
    sidecar = subprocess.Popen([sys.executable, "-m", "exporter", "serve", "--demo"], env=env,
                               stdout=(work / "sidecar.log").open("wb"),
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    me = psutil.Process(sidecar.pid)
    start = time.monotonic()
    total = args.minutes * 60
    outage_from = total / 2 - args.outage * 30
    outage_to = outage_from + args.outage * 60
    samples: list[tuple[float, float]] = []
    down = False
    try:
        while (elapsed := time.monotonic() - start) < total:
            if not down and outage_from <= elapsed < outage_to:
                loki_process.terminate()
                loki_process.wait()
                down = True
            elif down and elapsed >= outage_to:
                loki_process = receiver(loki, work / "loki.log")
                down = False
            httpx.get(url + "/api/v1/observability/dashboard", timeout=10)  # the page's polling
            samples.append((elapsed, me.memory_info().rss / 2**20))
            time.sleep(args.every)
    finally:
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(timeout=30)
        loki_process.terminate()
    after = [p for p in samples if p[0] >= 300] or samples
    outage = [p for p in samples if outage_from <= p[0] < outage_to]
    print(f"{len(samples)} samples over {args.minutes:g} min, Loki down from "
          f"{outage_from / 60:.0f} to {outage_to / 60:.0f} min; files in {work}")
    print()
    print("| figure | value | goal |")
    print("| --- | --- | --- |")
    print(f"| RSS, max | {max(p[1] for p in samples):.1f} MB | < 80 MB |")
    print(f"| RSS at 5 min / at the end | {after[0][1]:.1f} / {samples[-1][1]:.1f} MB | |")
    print(f"| RSS during the Loki outage, max | "
          f"{max((p[1] for p in outage), default=float('nan')):.1f} MB | |")
    print(f"| slope after 5 min | {slope_mb_per_10_min(after):+.2f} MB per 10 min | "
          "< 1 MB per 10 min |")


if __name__ == "__main__":
    main()
