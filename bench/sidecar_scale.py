"""CPU and memory of the sidecar watching many targets: one history interval's scrape, parse and
evaluation of 50 targets of 2,000 series each.

The targets are one HTTP server in another process (pinned to the other CPU) serving 50 paths,
each a recorded exposition of a real instrumented app (tests/watched_apps.py's routes, widened to
2,000 series with more routes and the process/host families an app serves), counters moving on
every scrape. The sidecar's side runs here: `TargetsSource` + `History` as `exporter serve` with
EXPORTER_TARGETS builds them, `record()` called once per interval; CPU time is this process's
(`time.process_time`), so the server's work does not count.

    .venv/bin/python bench/sidecar_scale.py [--targets 50] [--series 2000] [--intervals 12]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.config.targets import parse_targets
from exporter.health.history import History
from exporter.health.targets import TargetsSource
from tests.conftest import free_port

BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.2", "0.3", "0.4", "0.45", "0.5", "0.55",
           "0.6", "0.75", "1.0", "2.5", "5.0", "10.0", "+Inf")
STATUSES = ("200", "404", "500")


def exposition(series: int, tick: int) -> str:
    """An app's /metrics with about `series` sample lines, counters at `tick` scrapes."""
    lines = ["# HELP http_requests_total Requests.", "# TYPE http_requests_total counter"]
    per_route = len(STATUSES) + len(BUCKETS) + 3  # statuses, buckets, count, sum, in progress
    routes = max(1, (series - 60) // per_route)
    for r in range(routes):
        for status in STATUSES:
            value = tick * (10 if status == "200" else 1) + r
            lines.append(f'http_requests_total{{method="GET",route="/r{r}/{{id}}",'
                         f'status="{status}"}} {value}.0')
    lines += ["# HELP http_request_duration_seconds Duration.",
              "# TYPE http_request_duration_seconds histogram"]
    for r in range(routes):
        for i, le in enumerate(BUCKETS):
            value = tick * (i + 1) + r
            lines.append(f'http_request_duration_seconds_bucket{{method="GET",'
                         f'route="/r{r}/{{id}}",le="{le}"}} {value}.0')
        lines.append(f'http_request_duration_seconds_count{{method="GET",route="/r{r}/{{id}}"}} '
                     f"{tick * 18 + r}.0")
        lines.append(f'http_request_duration_seconds_sum{{method="GET",route="/r{r}/{{id}}"}} '
                     f"{tick * 0.7:.3f}")
        lines.append(f'http_requests_in_progress{{method="GET",route="/r{r}/{{id}}"}} 0.0')
    for n in range(60 - 3):  # the process, GC and host families an app also serves
        lines.append(f'python_gc_objects_collected_total{{generation="{n}"}} {tick * 3}.0')
    lines.append(f"system_cpu_usage_ratio {0.2 + (tick % 5) / 100}")
    lines.append("system_memory_usage_ratio 0.41")
    lines.append('system_disk_usage_ratio{mountpoint="/"} 0.6')
    return "\n".join(lines) + "\n"


def serve(port: int, targets: int, series: int) -> None:
    """The targets: `/t<n>/metrics`, each scrape moving that target's counters on."""
    os.sched_setaffinity(0, {1 % os.cpu_count()})  # type: ignore[attr-defined]
    ticks = [0] * targets
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            n = int(self.path.split("/")[1][1:])
            with lock:
                ticks[n] += 1
                tick = ticks[n]
            body = exposition(series, tick).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--intervals", type=int, default=12)
    args = parser.parse_args()
    port = free_port()
    server = multiprocessing.Process(target=serve, args=(port, args.targets, args.series),
                                     daemon=True)
    server.start()
    time.sleep(1.0)
    os.sched_setaffinity(0, {0})  # type: ignore[attr-defined]
    me = psutil.Process()
    baseline = me.memory_info().rss
    targets = parse_targets([f"http://127.0.0.1:{port}/t{n}/metrics"
                             for n in range(args.targets)])
    source = TargetsSource(targets, timeout=5.0)
    history = History(source, signal_window=60.0, interval=10.0, window=3600.0,
                      per_instance=True)
    cpu, wall = [], []
    clock = [1000.0]
    history._monotonic = lambda: clock[0]
    history._clock = lambda: clock[0]
    for _ in range(args.intervals):
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        point = history.record()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        clock[0] += 10.0
    scrapes = source.last()
    lines = sum(s.series for s in scrapes)
    up = sum(s.up for s in scrapes)
    rss = me.memory_info().rss
    server.terminate()
    warm = cpu[2:]  # the first intervals fill the frames
    print(f"targets: {up} of {args.targets} up, {lines / max(up, 1):.0f} sample lines each "
          f"({lines} per interval); {len(point.instances)} instances in the last point")
    print()
    print("| figure | value | goal |")
    print("| --- | --- | --- |")
    print(f"| CPU per interval (scrape, parse, reduce, evaluate), median | "
          f"{statistics.median(warm):.3f} s | < 1 s |")
    print(f"| CPU per interval, max | {max(warm):.3f} s | |")
    print(f"| wall time per interval, median | {statistics.median(wall[2:]):.3f} s | |")
    print(f"| RSS after {args.intervals} intervals | {rss / 2**20:.0f} MB (baseline "
          f"{baseline / 2**20:.0f} MB) | < 150 MB |")
    source.close()


if __name__ == "__main__":
    main()
