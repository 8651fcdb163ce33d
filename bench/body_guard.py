"""What unauthorised and oversized uploads cost a real sidecar: N bodies of M MB sent at once
to the routes that take a body, without a token (Content-Length, then chunked), and with the
token but over the caps; per burst the median and slowest answer (from the request's head to
the status line) and the server's peak RSS growth (VmHWM after `clear_refs 5`, minus VmRSS).

    .venv/bin/python bench/body_guard.py [--bodies 10] [--mb 100] [--compare DIR]

This checkout is measured twice (A and A', the noise between two runs of the same server);
`--compare DIR` adds another checkout (`git archive <commit> | tar -x -C DIR`) served the same
way, e.g. the version before the token and the caps were checked first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import free_port, wait_until_up  # noqa: E402
from tests.raw_http import MIB, at_once, upload  # noqa: E402

TOKEN = "bench-body-guard"
ROUTES = [("POST", "/api/v1/observability/alerts/webhook"),
          ("PATCH", "/api/v1/observability/errors/" + "ab" * 16),
          ("PUT", "/demo/config"),
          ("POST", "/api/v1/logs/batch"),
          ("POST", "/api/v1/logs/write")]
BURSTS = [("no token", {}), ("no token, chunked", {"chunked": True}),
          ("token, over the cap", {"headers": {"Authorization": f"Bearer {TOKEN}"}})]


def burst(url: str, pid: int, count: int, size: int, options: dict[str, object]
          ) -> tuple[float, float, float, str]:
    """(median ms, slowest ms, peak RSS growth MiB, statuses) of `count` uploads at once."""
    routes = [ROUTES[n % len(ROUTES)] for n in range(count)]
    answers, growth = at_once(
        pid, lambda route: upload(url, *route, size, **options),  # type: ignore[arg-type]
        routes)
    ms = [a.seconds * 1000 for a in answers]
    statuses = ",".join(sorted({str(a.status) for a in answers}))
    return statistics.median(ms), max(ms), growth / MIB, statuses


def measure(repo: Path, count: int, size: int) -> list[tuple[str, float, float, float, str]]:
    """Each burst against a fresh sidecar of `repo`."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(repo), "EXPORTER_API_TOKEN": TOKEN,
               "EXPORTER_DEMO": "true", "EXPORTER_DEMO_RATE": "0",
               "EXPORTER_LOG_STDOUT": "false", "EXPORTER_LOG_LEVEL": "warning",
               "EXPORTER_DATA_DIR": f"{tmp}/data", "EXPORTER_LOG_DIR": f"{tmp}/logs"}
        server = subprocess.Popen([sys.executable, "-m", "exporter", "serve", "--port",
                                   str(port)], env=env, cwd=repo)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url + "/healthz", server, timeout=60)
            for route in ROUTES:  # warm up: the first answer of each kind imports what it needs
                upload(url, *route, 10)
            for name, options in BURSTS:
                rows.append((name, *burst(url, server.pid, count, size, options)))
        finally:
            server.terminate()
            server.wait(30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=10, help="uploads at once")
    parser.add_argument("--mb", type=int, default=100, help="size of each body, MiB")
    parser.add_argument("--compare", type=Path, metavar="DIR", help="another checkout")
    args = parser.parse_args()
    variants = [("A", REPO), ("A'", REPO)]
    if args.compare is not None:
        variants.append((f"B {args.compare}", args.compare.resolve()))
    print(f"{args.bodies} bodies of {args.mb} MiB at once, over the routes "
          + ", ".join(f"{m} {p}" for m, p in ROUTES))
    print("| variant | burst | median ms | slowest ms | peak RSS growth MiB | statuses |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for name, repo in variants:
        for burst_name, median, slowest, growth, statuses in measure(
                repo, args.bodies, args.mb * MIB):
            print(f"| {name} | {burst_name} | {median:.0f} | {slowest:.0f} | {growth:.1f} "
                  f"| {statuses} |")


if __name__ == "__main__":
    main()
