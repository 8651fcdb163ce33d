"""Log shipping: caller cost, end-to-end throughput into a Loki receiver, and the batch API.

    python bench/log_shipping.py [--records 100000] [--api-seconds 10]    # about 1 minute
    python bench/log_shipping.py --api-only --compare /tmp/before          # before/after
    python bench/log_shipping.py --shippers-only --compare /tmp/before     # before/after

With `--compare DIR` (a checkout of another version, e.g. `git archive <commit> | tar -x -C
DIR`), only the batch API (`--api-only`) or only the two shippers alone (`--shippers-only`: the
shipper alone and the file shipper alone) are measured, alternately with DIR's package and this
checkout's, twice each (A, B, A, B): the two runs of one version are the A/A pair that shows the
noise. Both versions ship the same lines into the same (this checkout's) strict receiver.

Every variant formats with the same `JsonFormatter`. The receiver (tests/loki_receiver.py, the
one the tests use, checking the push format) runs in its own process on CPU 1; the logging
process runs on CPU 0. python-logging-loki posts one record per request, synchronously, so it
gets far fewer records (its per-record figure does not depend on the count).
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parent.parent
# `--package DIR`: import the exporter package of another checkout (what --compare runs).
PACKAGE = Path(sys.argv[sys.argv.index("--package") + 1]) if "--package" in sys.argv else REPO
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(PACKAGE))

from exporter.logs.file_shipper import FileShipper  # noqa: E402
from exporter.logs.formatter import JsonFormatter  # noqa: E402
from exporter.logs.loki import LokiShipper  # noqa: E402
from exporter.logs.loki_config import LokiConfig  # noqa: E402
from tests.conftest import free_port  # noqa: E402

OURS_RECORDS = 100_000
BATCH_SIZE = 500
API_SECONDS = 10


def pinned(cpu: int, argv: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu), *argv] if taskset else argv


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError(url)


@contextmanager
def receiver_process(lenient: bool = False) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, str(REPO / "tests" / "loki_receiver.py"), str(port)]
    proc = subprocess.Popen(pinned(1, argv + (["--lenient"] if lenient else [])))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/count")
        yield url
    finally:
        proc.terminate()
        proc.wait()


def received(url: str) -> int:
    return int(httpx.get(url + "/count", timeout=5).text)


def wait_received(url: str, count: int, timeout: float = 60.0) -> float:
    """When the receiver had `count` lines (asked over one kept-alive connection every 10 ms:
    an httpx.get every 5 ms cost the shipping process as much CPU as the shipper)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            conn.request("GET", "/count")
            if int(conn.getresponse().read()) >= count:
                return time.perf_counter()
            time.sleep(0.01)
    finally:
        conn.close()
    raise TimeoutError(f"{url} got {received(url)} of {count} lines")


def logger_with(handler: logging.Handler, name: str) -> logging.Logger:
    handler.setFormatter(JsonFormatter("bench", "bench"))
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def log_records(logger: logging.Logger, count: int) -> float:
    """Seconds the caller spent logging `count` records."""
    start = time.perf_counter()
    for n in range(count):
        logger.info("order %d placed", n, extra={"order_id": n, "amount": 12.5})
    return time.perf_counter() - start


def run_variant(make: Callable[[str], logging.Handler], count: int, lenient: bool
                ) -> tuple[float, float]:
    """(caller µs per record, end-to-end lines/s) for one handler type."""
    with receiver_process(lenient) as url:
        handler = make(url)
        logger = logger_with(handler, f"bench.{type(handler).__name__}")
        start = time.perf_counter()
        caller = log_records(logger, count)
        done = wait_received(url, count)
        handler.close()
    return caller / count * 1e6, count / (done - start)


WORKER_CPU: dict[str, float] = {}  # µs per line on the shipper's own thread, by run


def shipper_thread_cpu() -> float:
    """CPU seconds of the live shipper threads (`exporter-loki`), from the kernel's per-thread
    accounting: what the shipper costs, apart from the caller and the waiting."""
    seconds = 0.0
    for thread in threading.enumerate():
        if "loki" in thread.name and thread.native_id is not None:
            with open(f"/proc/self/task/{thread.native_id}/schedstat") as stat:
                seconds += int(stat.read().split()[0]) / 1e9
    return seconds


def shipping_only(count: int) -> float:
    """Lines/s of the shipper alone: lines already formatted, handed to `enqueue_line` (the
    path the ingestion API takes), from the first hand-over to the last line received."""
    line = JsonFormatter("bench", "bench").render_fields(time.time(), "info", "bench", {
        "message": "order 1 placed", "trace_id": os.urandom(16).hex(),
        "span_id": os.urandom(8).hex(), "order_id": 1, "amount": 12.5})
    with receiver_process() as url:
        shipper = LokiShipper(LokiConfig(url=url, spool_dir=Path(tempfile.mkdtemp()),
                                         service="bench", env="bench", queue_lines=count + 1))
        start = time.perf_counter()
        for _ in range(count):
            shipper.enqueue_line(time.time(), "info", line)
        done = wait_received(url, count)
        WORKER_CPU["alone"] = shipper_thread_cpu() / count * 1e6
        shipper.close()
    return count / (done - start)


def files_shipping(count: int) -> float:
    """Lines/s of the file shipper alone (what `setup_logging` and the sidecar use): `count`
    lines already in a daily file, from the shipper's start to the last line received."""
    formatter = JsonFormatter("bench", "bench")
    lines = [formatter.render_fields(time.time(), "info", "exporter.ingest", {
        "message": f"event {n}", "service": "ads", "trace_id": os.urandom(16).hex(),
        "adv_id": n, "plan_id": f"p{n % 7}", "user_id": 1000 + n}) for n in range(BATCH_SIZE)]
    chunk = ("\n".join(lines) + "\n").encode()
    day = time.strftime("%Y-%m-%d", time.gmtime())
    with receiver_process() as url, tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp, "logs")
        logs.mkdir()
        Path(tmp, "data").mkdir()
        with open(logs / f"app_{day}.log", "wb") as file:
            file.write(chunk * (count // BATCH_SIZE))
        Path(tmp, "data", "positions.json").write_text(  # as if saved with the file empty
            json.dumps({"log_dir": str(logs.resolve()), "files": {}}))
        start = time.perf_counter()
        shipper = FileShipper(LokiConfig(url=url, spool_dir=Path(tmp, "unused"),
                                         service="bench", env="bench"),
                              logs, Path(tmp, "data", "positions.json"))
        done = wait_received(url, count // BATCH_SIZE * BATCH_SIZE)
        WORKER_CPU["files"] = shipper_thread_cpu() / (count // BATCH_SIZE * BATCH_SIZE) * 1e6
        shipper.close()
    return count // BATCH_SIZE * BATCH_SIZE / (done - start)


def stream_handler_cost(count: int) -> float:
    """Best of three runs, after a warm-up (the machine is shared; the best run is the cost)."""
    with open(os.devnull, "w") as devnull:
        logger = logger_with(logging.StreamHandler(devnull), "bench.stream")
        log_records(logger, 5_000)
        return min(log_records(logger, count) for _ in range(3)) / count * 1e6


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name))


def left_behind(tmp: str) -> int:
    """Lines Loki had not acknowledged at shutdown: in an older version's spool, or in the daily
    files past the file shipper's positions (both wait for the next start)."""
    spooled = sum(int(f.name.split("-")[1].split(".")[0])
                  for f in Path(tmp, "data", "loki-spool").glob("*/*.gz"))
    saved: dict[str, list[int]] = {}
    for positions in Path(tmp, "data", "loki-positions").glob("*.json"):
        saved.update(json.loads(positions.read_text())["files"])
    for path in Path(tmp, "logs").glob("*.log"):
        if not path.name.startswith(("app_", "access_")) or not saved:
            continue
        device, inode, offset = saved.get(path.name, [0, 0, 0])
        stat = path.stat()
        start = offset if (stat.st_dev, stat.st_ino) == (device, inode) else 0
        with open(path, "rb") as file:
            file.seek(start)
            spooled += file.read().count(b"\n")
    return spooled


def api_throughput(seconds: int, repo: Path = REPO) -> tuple[float, int, int, int, int, float]:
    """Through POST /logs/batch of the sidecar of `repo`: (entries/s accepted, entries
    accepted, batches refused with 429, lines the receiver got, lines Loki had not acknowledged
    at shutdown, lines dropped)."""
    entries = [{"message": f"event {n}", "service_name": "ads", "level": "info",
                "trace_id": os.urandom(16).hex(), "adv_id": n, "plan_id": f"p{n % 7}",
                "monitor_type": "cpc", "user_id": 1000 + n} for n in range(BATCH_SIZE)]
    body = json.dumps({"entries": entries})
    with receiver_process() as loki, tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "EXPORTER_LOKI_URL": loki, "EXPORTER_LOG_STDOUT": "false",
               "EXPORTER_DATA_DIR": f"{tmp}/data", "EXPORTER_LOG_DIR": f"{tmp}/logs",
               "EXPORTER_LOG_LEVEL": "warning"}
        # `python -m exporter` from `repo`: its own package comes first on sys.path.
        server = subprocess.Popen(
            pinned(0, [sys.executable, "-m", "exporter", "serve", "--port", str(port)]),
            env={**env, "PYTHONPATH": str(repo)}, cwd=repo,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            script = Path(tmp) / "batch.lua"
            # Counts the answers by kind: 429 (the pipeline is behind: the client would retry
            # the batch) is expected under this load; anything else is a failure.
            script.write_text(
                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = [==[{body}]==]\n"
                "local threads = {}\n"
                "function setup(thread) table.insert(threads, thread) end\n"
                "function init(args) refused = 0; failed = 0 end\n"
                "function response(status, headers, body)\n"
                "  if status == 429 then refused = refused + 1\n"
                "  elseif status >= 300 then failed = failed + 1 end\n"
                "end\n"
                "function done(summary, latency, requests)\n"
                "  for _, t in ipairs(threads) do\n"
                '    io.write(string.format("refused %d\\nfailed %d\\n", t:get("refused"),'
                ' t:get("failed")))\n'
                "  end\n"
                "end\n"
            )
            wrk = shutil.which("wrk")
            if wrk is None:
                raise SystemExit("wrk is not installed (apt-get install -y wrk)")
            url = f"http://127.0.0.1:{port}/api/v1/logs/batch"
            out = subprocess.run(
                pinned(1, [wrk, "-t1", "-c4", f"-d{seconds}s", "-s", str(script), url]),
                capture_output=True, text=True, check=True,
            ).stdout
            counts = dict(line.split() for line in out.splitlines()
                          if line.startswith(("refused ", "failed ")))
            if int(counts.get("failed", "0")):
                raise SystemExit("the batch API answered errors:\n" + out)
            requests = int(next(
                line.split()[0] for line in out.splitlines() if "requests in" in line
            ))
            refused = int(counts.get("refused", "0"))
            accepted = (requests - refused) * BATCH_SIZE
            rate = accepted / seconds
            scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        got = received(loki)
        spooled = left_behind(tmp)
    dropped = metric(scrape, "loki_shipper_lines_dropped_total")
    return rate, accepted, refused, got, spooled, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=OURS_RECORDS,
                        help="records our shipper logs (python-logging-loki: a fiftieth)")
    parser.add_argument("--api-seconds", type=int, default=API_SECONDS,
                        help="length of the wrk run against POST /api/v1/logs/batch")
    parser.add_argument("--api-only", action="store_true", help="only the batch API")
    parser.add_argument("--shippers-only", action="store_true",
                        help="only the shipper alone and the file shipper alone")
    parser.add_argument("--compare", type=Path, metavar="DIR",
                        help="the batch API (or with --shippers-only, the shippers) of the "
                             "checkout in DIR and of this one, A B A B")
    parser.add_argument("--package", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.shippers_only:
        if args.package is not None:  # one run, for --compare: the figures as JSON
            rates = [shipping_only(args.records), files_shipping(args.records)]
            print(json.dumps([rates[0], WORKER_CPU["alone"], rates[1], WORKER_CPU["files"]]))
        else:
            shippers_table(args.records, args.compare)
        return
    if args.compare is not None or args.api_only:
        api_table(args.api_seconds, args.compare)
        return
    if args.records < 1_000 or args.api_seconds < 1:
        parser.error(f"--records must be >= 1000 and --api-seconds >= 1 "
                     f"(got {args.records}, {args.api_seconds})")
    records, baseline_records = args.records, max(100, args.records // 50)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})  # the logging process on CPU 0, receivers on CPU 1
    stream_us = stream_handler_cost(records)

    def ours(url: str) -> logging.Handler:
        spool = Path(tempfile.mkdtemp(prefix="bench-spool-"))
        return LokiShipper(LokiConfig(url=url, spool_dir=spool, service="bench", env="bench"))

    def baseline(url: str) -> logging.Handler:
        import logging_loki  # bench-only dependency (pip install -e '.[bench]')

        return logging_loki.LokiHandler(url + "/loki/api/v1/push", tags={"service": "bench"},
                                        version="1")

    ours_us, ours_rate = run_variant(ours, records, lenient=False)
    base_us, base_rate = run_variant(baseline, baseline_records, lenient=True)
    alone_rate = shipping_only(records)
    files_rate = files_shipping(records)
    ceiling = 1e6 / stream_us

    print(f"\nCaller cost per record (same JsonFormatter; {records:,} records, "
          f"python-logging-loki {baseline_records:,})")
    print("| handler | µs/record | vs StreamHandler |")
    print("| --- | ---: | ---: |")
    print(f"| StreamHandler to /dev/null | {stream_us:.1f} | 1.00x |")
    print(f"| exporter LokiShipper | {ours_us:.1f} | {ours_us / stream_us:.2f}x |")
    print(f"| python-logging-loki LokiHandler | {base_us:.1f} | {base_us / stream_us:.2f}x |")
    print("\nEnd to end into the local receiver (first record logged to last line received; "
          "logging process on one CPU)")
    print("| path | lines/s | vs python-logging-loki | vs StreamHandler ceiling |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| logger.info -> exporter LokiShipper | {ours_rate:,.0f} | "
          f"{ours_rate / base_rate:.1f}x | {ours_rate / ceiling:.2f} |")
    print(f"| logger.info -> python-logging-loki LokiHandler | {base_rate:,.0f} | 1.0x | "
          f"{base_rate / ceiling:.3f} |")
    print(f"| formatted line -> LokiShipper.enqueue_line (shipper alone) | {alone_rate:,.0f} | "
          f"{alone_rate / base_rate:.1f}x | |")
    print(f"| lines in a daily file -> FileShipper (what setup_logging ships with) | "
          f"{files_rate:,.0f} | {files_rate / base_rate:.1f}x | |")
    print(f"| (ceiling: logger.info -> StreamHandler to /dev/null) | {ceiling:,.0f} | | 1.00 |")
    print("goals: caller <= 2x StreamHandler; end to end >= 50,000 lines/s and >= 10x baseline.")
    print("No in-process handler can beat the ceiling: one logger.info with this formatter costs "
          f"{stream_us:.1f} µs here.")

    api_table(args.api_seconds, None)


def shippers_table(records: int, other: Path | None) -> None:
    """Lines/s of the shipper alone and the file shipper alone: this checkout once, or `other`
    and this one, A B A B (each run in its own process, importing its checkout's package)."""
    runs = [REPO] if other is None else [other.resolve(), REPO, other.resolve(), REPO]
    print(f"\nShippers alone, {records:,} lines into the strict receiver (CPU 1), shipper on CPU 0")
    print("| checkout | formatted line -> LokiShipper.enqueue_line: lines/s | shipper thread "
          "CPU µs/line | lines in a daily file -> FileShipper: lines/s | shipper thread CPU "
          "µs/line |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for repo in runs:
        out = subprocess.run(
            pinned(0, [sys.executable, str(Path(__file__).resolve()), "--shippers-only",
                       "--records", str(records), "--package", str(repo)]),
            capture_output=True, text=True, check=True).stdout
        alone, alone_cpu, files, files_cpu = json.loads(out.strip().splitlines()[-1])
        print(f"| {repo} | {alone:,.0f} | {alone_cpu:.1f} | {files:,.0f} | {files_cpu:.1f} |",
              flush=True)
    print("(lines/s: first line handed over to last line received, the receiver's checking "
          "included, since each push waits for its answer; CPU: the shipper's own thread, "
          "which a loaded machine changes less than the lines/s)")


def api_table(seconds: int, other: Path | None) -> None:
    """The batch API's figures: this checkout once, or `other` and this one, A B A B."""
    runs = [REPO] if other is None else [other.resolve(), REPO, other.resolve(), REPO]
    print(f"\nPOST /api/v1/logs/batch, {BATCH_SIZE} entries per request, one uvicorn worker "
          f"(CPU 0), wrk -c4 for {seconds} s (CPU 1)")
    print("| checkout | entries/s accepted | entries accepted | batches refused (429, to retry) "
          "| lines Loki received | lines not yet acknowledged at shutdown | lines dropped |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for repo in runs:
        rate, accepted, refused, got, spooled, dropped = api_throughput(seconds, repo)
        print(f"| {repo} | {rate:,.0f} | {accepted:,} | {refused:,} | {got:,} | {spooled:,} "
              f"| {dropped:,.0f} |", flush=True)
    print("(Loki also receives the sidecar's own log lines; wrk counts only completed requests; "
          "a refused batch wrote nothing; lines not yet acknowledged wait in the spool or the "
          "daily files for the next start)")
    print("goal: >= 20,000 entries/s (the gRPC log client it replaces: 2,000-3,000)")


if __name__ == "__main__":
    main()
