"""CPU instructions per request of the bench app: bare, with `instrument(app)`, and with
prometheus-fastapi-instrumentator, counted by valgrind's callgrind.

    .venv/bin/python bench/http_instructions.py [--requests 1000]

wrk's requests/s on this shared 2-core machine swing by 30 % between runs of the same server;
an instruction count does not (callgrind counts the same for the same program and input,
whatever else the machine does). Each variant runs the ASGI app in-process (no server, no
network, as bench/middleware_cost.py does) twice under callgrind, with `W` and `W + N`
requests after the same warm-up; the difference divided by N is the app's own instructions per
request, start-up and warm-up cancelled out. What the HTTP server itself costs per request
(parsing, the event loop, sockets) is the same for every variant and is not in these figures,
so the ratios here are the upper bound of the overhead a server sees.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
VARIANTS = ("bare", "ours", "instrumentator")
WARMUP = 1000  # every one of the 1000 paths once: the route cache is warm, as in a steady state


def _serve_in_process(variant: str, requests: int) -> None:
    """The measured program: build one variant, warm it up, drive `requests` requests."""
    sys.path.insert(0, str(BENCH_DIR))
    sys.path.insert(0, str(BENCH_DIR.parent))
    import apps
    from middleware_cost import _drive

    app = {"bare": apps.bare_app, "ours": apps.ours_app,
           "instrumentator": apps.instrumentator_app}[variant]()
    asyncio.run(_drive(app, WARMUP))
    if requests:
        asyncio.run(_drive(app, requests))


def _instructions(valgrind: str, variant: str, requests: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
             sys.executable, __file__, "--run", variant, str(requests)],
            capture_output=True, text=True, check=False,
        )
    if out.returncode != 0:
        raise SystemExit(f"{variant} under callgrind failed:\n{out.stderr[-2000:]}")
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no total for {variant}:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--run":
        _serve_in_process(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000,
                        help="requests counted per variant (after the warm-up)")
    args = parser.parse_args()
    if args.requests < 100:
        parser.error(f"--requests must be at least 100 (got {args.requests})")
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install -y valgrind)")
    per_request: dict[str, float] = {}
    for variant in VARIANTS:
        base = _instructions(valgrind, variant, 0)
        more = _instructions(valgrind, variant, args.requests)
        per_request[variant] = (more - base) / args.requests
        print(f"{variant:>15}: {per_request[variant]:,.0f} instructions per request",
              file=sys.stderr)
    bare = per_request["bare"]
    print(f"\nIn-process ASGI calls, GET /items/{{1..1000}}, {args.requests} requests after "
          f"{WARMUP} of warm-up, counted by callgrind (deterministic)\n")
    print("| variant | instructions per request | vs bare | added per request |")
    print("| --- | ---: | ---: | ---: |")
    for variant in VARIANTS:
        count = per_request[variant]
        print(f"| {variant} | {count:,.0f} | {count / bare:.3f}x | {count - bare:+,.0f} |")
    print("\nThroughput bound from these counts (the app alone, no HTTP server): "
          + ", ".join(f"{v} {bare / per_request[v]:.3f} of bare" for v in VARIANTS[1:]))


if __name__ == "__main__":
    main()
