"""CPU instructions per request of one uvicorn worker serving the bench app bare, with
`instrument(app)`, with everything on, with prometheus-fastapi-instrumentator (and, with
`--variants otel`, FastAPI's own OpenTelemetry), counted by valgrind's callgrind.

    .venv/bin/python bench/http_instructions.py [--requests 1000] [--variants default]

wrk's requests/s on this shared 2-core machine swing by 30 % between runs of the same server;
an instruction count does not depend on what else the machine does. Each variant's server runs
under callgrind twice: once answering the warm-up requests (every one of the 1000 paths once,
so the route caches are warm), once answering the warm-up and N more. The difference divided
by N is what one request costs the server process (HTTP parsing, the event loop, the app, the
instrumentation), with start-up and warm-up cancelled out. A server doing the same work per
request at the same clock serves `bare / variant` as many requests per second: the ratio
printed. The servers run with the cyclic garbage collector off and a fixed hash seed: where a
full collection of FastAPI's object graph happens to fall moved a count by up to 5 %, more than
the difference being measured. Every thread of the server counts: for "everything", the
file writer's and the Loki shipper's work (the server stops only once the local Loki receiver
has a line of every request). The variants are those of `http_overhead.py` (`variants.py`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import variants  # noqa: E402
from variants import VARIANTS, BenchError  # noqa: E402

WARMUP = 1000  # every one of the 1000 paths once: the route caches are warm, as in a steady state


def _instructions(valgrind: str, name: str, requests: int) -> tuple[int, list[int]]:
    """Instructions the variant's server process ran, answering the warm-up and `requests`, in
    all and by thread (in the order the threads started: the event loop's first)."""
    variant = VARIANTS[name]
    with variants.surroundings(variant) as extra, tempfile.TemporaryDirectory() as tmp:
        total = _count(valgrind, name, requests, extra, Path(tmp))
        threads = []
        for out in sorted(Path(tmp).glob("cg.out-*"), key=lambda p: int(p.name.split("-")[-1])):
            found = re.search(r"^summary: (\d+)", out.read_text(errors="replace"), re.MULTILINE)
            threads.append(int(found.group(1)) if found else 0)
        return total, threads


def _count(valgrind: str, name: str, requests: int, extra: dict[str, str], tmp: Path) -> int:
    port = variants.free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [valgrind, "--tool=callgrind", "--separate-threads=yes",
         f"--callgrind-out-file={tmp}/cg.out",
         sys.executable, "-m", "uvicorn", "--factory", VARIANTS[name].factory,
         "--app-dir", str(BENCH_DIR), "--port", str(port), "--no-access-log",
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**variants.server_env(extra), "BENCH_GC_OFF": "1", "PYTHONHASHSEED": "0"},
    )
    try:
        deadline = time.monotonic() + 1200  # valgrind on a loaded machine: minutes
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name}: the server under callgrind did not start")
            try:
                httpx.get(base + "/ping", timeout=10)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        try:
            variants.check(VARIANTS[name], base, extra)
        except BenchError as exc:
            raise SystemExit(f"http_instructions: {exc}") from None
        with httpx.Client(base_url=base, timeout=60) as client:  # one keep-alive connection
            for n in range(WARMUP + requests):
                reply = client.get(f"/items/{n % 1000 + 1}")
                if reply.status_code != 200:
                    raise SystemExit(f"{name}: /items answered {reply.status_code}")
        shipped_by = time.monotonic() + 120
        while extra and variants.loki_lines(extra) < WARMUP + requests:  # the shipper's work counts
            if time.monotonic() > shipped_by:
                raise SystemExit(f"{name}: Loki got {variants.loki_lines(extra)} lines, expected "
                                 f"{WARMUP + requests} or more")
            time.sleep(0.5)
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=300)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    found = re.search(r"Collected : (\d+)", err)
    if found is None:
        raise SystemExit(f"callgrind printed no total for {name}:\n{err[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000,
                        help="requests counted per variant (after the warm-up)")
    parser.add_argument("--variants", default="default",
                        help=f"a group ({', '.join(variants.GROUPS)}) or variant names "
                             f"separated by commas, of: {', '.join(VARIANTS)}")
    parser.add_argument("--bare-instructions", type=float, default=None, metavar="N",
                        help="bare's count per request from an earlier run with the same "
                             "--requests (it is deterministic): bare is not run again")
    args = parser.parse_args()
    if args.requests < 100:
        parser.error(f"--requests must be at least 100 (got {args.requests})")
    try:
        chosen = variants.parse_variants(args.variants)
    except ValueError as exc:
        parser.error(f"--variants {args.variants!r}: {exc}")
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install -y valgrind)")
    per_request: dict[str, float] = {}
    by_thread: dict[str, list[float]] = {}
    if args.bare_instructions is not None:
        per_request["bare"] = args.bare_instructions
    for variant in chosen:
        if variant in per_request:
            continue
        base, base_threads = _instructions(valgrind, variant, 0)
        more, more_threads = _instructions(valgrind, variant, args.requests)
        per_request[variant] = (more - base) / args.requests
        if len(base_threads) == len(more_threads):
            by_thread[variant] = [(after - before) / args.requests
                                  for before, after in zip(base_threads, more_threads, strict=True)]
        print(f"{variant:>15}: {per_request[variant]:,.0f} instructions per request",
              file=sys.stderr, flush=True)
    bare = per_request["bare"]
    print(f"\nOne uvicorn worker, GET /items/{{1..1000}} on one keep-alive connection, "
          f"{args.requests} requests after {WARMUP} of warm-up, counted by callgrind\n")
    print("| variant | instructions per request | vs bare | added per request "
          "| throughput bound (bare / variant) | by thread (event loop first) |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for variant in chosen:
        count = per_request[variant]
        threads = ", ".join(f"{n:,.0f}" for n in by_thread.get(variant, []) if abs(n) >= 100)
        print(f"| {variant} | {count:,.0f} | {count / bare:.3f}x | {count - bare:+,.0f} "
              f"| {bare / count:.3f} | {threads} |")
    print()
    for goal, (a, b, at_least) in variants.GOALS.items():
        if a in per_request and b in per_request:
            ratio = per_request[b] / per_request[a]
            print(f"goal {goal}: {'met' if ratio >= at_least else 'NOT met'} ({ratio:.3f})")


if __name__ == "__main__":
    main()
