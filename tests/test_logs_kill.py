"""`kill -9` at random moments, 20 times, while 20,000 lines are written: through the ingestion
API of a real `exporter serve`, and through `logging` in a process of its own (both at once,
each with its own folders and Loki), each restarted after every kill. The daily files are the
shipper's write-ahead log: every line arrives at the strict in-test Loki, and a line that
arrives twice arrives as the same entry (same labels, timestamp and line), which Loki drops.
Run with `-s` to see the figures."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port, wait_until_up
from tests.loki_receiver import LokiReceiver

REPO = Path(__file__).resolve().parent.parent
KILLS = 20
LINES = 20_000
PER_RUN = 2 * LINES // (KILLS + 1)  # a run is killed after a random number of lines below this
STARTUP_KILLS = 0.15  # the share of kills that land while the process starts
BATCH = 100


def child_env(tmp_path: Path, receiver: LokiReceiver) -> dict[str, str]:
    return {**os.environ, "EXPORTER_LOKI_URL": receiver.url, "EXPORTER_LOG_STDOUT": "false",
            "EXPORTER_LOG_DIR": str(tmp_path / "logs"), "EXPORTER_DATA_DIR": str(tmp_path / "data"),
            "EXPORTER_LOKI_BATCH_WAIT_SECONDS": "0.2", "EXPORTER_SERVICE_NAME": "killed",
            "EXPORTER_LOKI_CLOSE_TIMEOUT_SECONDS": "20"}


def kill_after(rng: random.Random, remaining: int) -> int:
    """Lines a run may take before its kill: random, and never the rest of the run."""
    return rng.randrange(max(1, min(PER_RUN, remaining // 2)))


def written(tmp_path: Path, logger: str) -> list[int]:
    """The seq of every whole line of `logger` in the app files, in file order."""
    seqs = []
    for path in sorted((tmp_path / "logs").glob("app_*.log")):
        for text in path.read_text(errors="replace").splitlines():
            try:
                doc = json.loads(text)
            except ValueError:
                continue  # part of a line a killed write() left (ended by the next writer)
            if doc.get("logger") == logger and "seq" in doc:
                seqs.append(doc["seq"])
    return seqs


def arrivals(receiver: LokiReceiver, logger: str, deadline: float) -> dict[int, set[Any]]:
    """seq -> the distinct (labels, ts, line) entries it arrived as; waits until every seq has
    arrived or `deadline` (monotonic) passes."""
    while True:
        found: dict[int, set[Any]] = {}
        for labels, ts, text in list(receiver.entries):
            try:
                doc = json.loads(text)
            except ValueError:
                continue
            if doc.get("logger") == logger and "seq" in doc:
                found.setdefault(doc["seq"], set()).add((tuple(sorted(labels.items())), ts, text))
        if len(found) >= LINES or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def check_arrivals(receiver: LokiReceiver, logger: str) -> dict[str, int]:
    """Every seq arrived, copies only as the same entry; the figures."""
    found = arrivals(receiver, logger, time.monotonic() + 60)
    assert receiver.errors == [], receiver.errors[:3]
    missing = sorted(set(range(LINES)) - set(found))
    assert missing == [], f"{len(missing)} lines never reached Loki, from seq {missing[:5]}"
    different = [seq for seq, entries in found.items() if len(entries) > 1]
    assert different == [], f"seq {different[:5]} arrived as different entries"
    lines = receiver.lines()
    received = sum(1 for text in lines if f'"logger":"{logger}"' in text and '"seq"' in text)
    parts = [text for text in lines if text.startswith('{"ts"') and not _is_json(text)]
    for part in parts:  # only what a killed write() left: the start of a line that arrived
        assert any(whole.startswith(part) for whole in lines if whole != part), part
    return {"duplicates": received - LINES, "torn": len(parts)}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


def test_kill_9_twenty_times_loses_no_line(tmp_path: Path) -> None:
    started = time.monotonic()
    (tmp_path / "api").mkdir()
    (tmp_path / "logging").mkdir()
    with ThreadPoolExecutor(1) as pool:
        api = pool.submit(kill_the_sidecar, tmp_path / "api")
        in_process = kill_a_logging_process(tmp_path / "logging")
        through_api = api.result()
    print(f"\n{through_api}\n{in_process}\nboth at once: {time.monotonic() - started:.1f} s")


def kill_the_sidecar(tmp_path: Path) -> str:
    """Every entry the sidecar answered 200 for reaches Loki, over 20 kills; the figures."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    receiver = LokiReceiver(free_port()).start()
    env = child_env(tmp_path, receiver)
    levels = ("info", "warning", "error")
    entries: dict[int, dict[str, Any]] = {}  # made once: a batch sent again is the same batch
    acknowledged = 0  # every seq below was answered 200
    kills = 0
    started = time.monotonic()
    try:
        while True:
            port = free_port()
            with (tmp_path / f"sidecar-{port}.log").open("wb") as log:
                server = subprocess.Popen(
                    [sys.executable, "-m", "exporter", "serve", "--port", str(port)],
                    stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
            url = f"http://127.0.0.1:{port}"
            if kills < KILLS and rng.random() < STARTUP_KILLS:
                time.sleep(rng.uniform(0.0, 1.0))
                server.kill()
                server.wait()
                kills += 1
                continue
            wait_until_up(url + "/healthz", server, timeout=60)  # generous: a loaded machine
            budget = kill_after(rng, LINES - acknowledged) if kills < KILLS else None
            taken = 0
            killer: threading.Timer | None = None
            with httpx.Client(base_url=url, timeout=30) as client:
                while acknowledged < LINES:
                    if budget is not None and taken >= budget and killer is None:
                        killer = threading.Timer(rng.uniform(0.0, 0.02), server.kill)
                        killer.start()
                    seqs = range(acknowledged, min(LINES, acknowledged + BATCH))
                    batch = [entries.setdefault(n, {
                        "message": "entry", "seq": n, "level": levels[n % 3],
                        "timestamp": stamp(time.time())}) for n in seqs]
                    try:
                        reply = client.post("/api/v1/logs/batch", json={"entries": batch})
                    except httpx.HTTPError:
                        if killer is None:  # slow, not killed: send it again
                            continue
                        break  # killed: this batch is sent again to the next process
                    if reply.status_code in (429, 503):  # what a client does: wait, send again
                        time.sleep(float(reply.headers.get("retry-after", "1")))
                        continue
                    assert reply.status_code == 200, reply.text
                    assert reply.json()["success"] == len(batch)
                    acknowledged += len(batch)
                    taken += len(batch)
            if killer is None and kills < KILLS:
                # Every entry was answered before the last kill (the seed's budgets ran out
                # first: 19 kills once): the process still ships from its files, so it is
                # killed all the same.
                time.sleep(rng.uniform(0.0, 0.5))
                server.kill()
                server.wait()
                kills += 1
                continue
            if killer is None:  # the last run: every entry was answered
                break
            killer.join()
            server.wait()
            kills += 1
            missing = set(range(acknowledged)) - set(written(tmp_path, "exporter.ingest"))
            assert not missing, f"answered 200 but not in the file: {sorted(missing)[:5]}"
        figures = check_arrivals(receiver, "exporter.ingest")
        server.terminate()
        server.wait(60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        receiver.stop()
    assert kills == KILLS
    return (f"API (seed {seed}): {kills} kills, {LINES} entries, lost 0, "
            f"duplicates {figures['duplicates']}, torn {figures['torn']}, "
            f"{time.monotonic() - started:.1f} s")


def kill_a_logging_process(tmp_path: Path) -> str:
    """Every line a logging process wrote to its files reaches Loki, over 20 kills."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    receiver = LokiReceiver(free_port()).start()
    env = child_env(tmp_path, receiver)
    first = 0  # every seq below is in the files
    kills = 0
    unwritten = 0  # logger.info had returned, the process was killed before the write
    started = time.monotonic()
    try:
        while True:
            child = subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "logging_child.py"), str(first),
                 str(LINES)], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
            assert child.stdout is not None
            logged = durable = -1
            if kills >= KILLS:  # the last run logs the rest and exits on its own
                child.communicate(timeout=180)
                assert child.returncode == 0
                break
            if rng.random() < STARTUP_KILLS:
                time.sleep(rng.uniform(0.0, 0.8))
            else:
                budget = first + kill_after(rng, LINES - first)
                for text in child.stdout:
                    kind, _, value = text.partition(" ")
                    if kind == "durable":
                        durable = int(value)
                    elif kind == "logged":
                        logged = int(value)
                        if logged >= budget:
                            time.sleep(rng.uniform(0.0, 0.01))
                            break
            child.kill()
            child.wait()
            child.stdout.close()
            kills += 1
            seqs = written(tmp_path, "child")
            assert seqs == list(range(len(seqs))), "a line is missing or twice in the files"
            assert durable < len(seqs), f"seq {durable} was flushed, the file ends before it"
            unwritten += max(0, logged + 1 - len(seqs))
            first = len(seqs)
        seqs = written(tmp_path, "child")
        assert seqs == list(range(LINES))
        figures = check_arrivals(receiver, "child")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        receiver.stop()
    assert kills == KILLS
    return (f"logging (seed {seed}): {kills} kills, {LINES} lines, lost 0 of those in the "
            f"files, duplicates {figures['duplicates']}, torn {figures['torn']}, logged but "
            f"killed before the write {unwritten} (logged again), "
            f"{time.monotonic() - started:.1f} s")
