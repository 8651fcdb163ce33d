"""Large request bodies over a raw socket, and a server's memory from /proc: what an attacker's
upload costs a real server process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

MIB = 1 << 20
T = TypeVar("T")


@dataclass
class Answer:
    """What the server answered, and how long after the request's head it did."""

    status: int
    body: bytes
    seconds: float
    headers: dict[str, str]


def _headers(lines: list[str]) -> dict[str, str]:
    return {name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])}


def upload(url: str, method: str, path: str, size: int, *, headers: dict[str, str] | None = None,
           chunked: bool = False, filler: bytes = b" ") -> Answer:
    """Send `size` bytes of `filler` (JSON whitespace by default) as the body, in 1 MiB pieces
    from a thread of their own, and read the answer meanwhile: a server that answers before it
    reads the body answers while the body is still on its way. The upload stops once answered.
    """
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
    head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    piece = (filler * (MIB // len(filler) + 1))[:MIB]
    framed = b"%x\r\n" % len(piece) + piece + b"\r\n" if chunked else piece
    answered = threading.Event()

    def pump() -> None:
        sent = 0
        try:
            while sent < size and not answered.is_set():
                sock.sendall(framed)
                sent += len(piece)
            if chunked and not answered.is_set():
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server closed the connection after answering
            pass

    started = time.monotonic()
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    sender = threading.Thread(target=pump, daemon=True)
    sender.start()
    try:
        sock.settimeout(120)
        received = b""
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed without an answer: {received!r}")
            received += data
        seconds = time.monotonic() - started
        answered.set()
        top, _, body = received.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                       if line.lower().startswith("content-length:")), 0)
        while len(body) < length:
            data = sock.recv(65536)
            if not data:
                break
            body += data
        return Answer(int(lines[0].split()[1]), body, seconds, _headers(lines))
    finally:
        answered.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        sender.join(30)


def send(url: str, method: str, path: str, body: bytes, *, headers: dict[str, str] | None = None,
         chunked: bool = False) -> Answer:
    """Send `body` whole (Content-Length) or in 64 KiB chunks (Transfer-Encoding: chunked)."""
    parts = urlsplit(url)
    started = time.monotonic()
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80)) as sock:
        head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}",
                "Content-Type: application/json", "Connection: close"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        if chunked:
            view = memoryview(body)
            for start in range(0, len(body), 65536):
                piece = view[start:start + 65536]
                sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(body)
        sock.settimeout(300)
        received = b""
        while data := sock.recv(65536):
            received += data
    top, _, answer = received.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    return Answer(int(lines[0].split()[1]), answer, time.monotonic() - started, _headers(lines))


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_bytes(pid: int) -> int:
    """The process's resident set size now (VmRSS)."""
    return _status_kib(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    """The process's largest resident set size since start or `reset_peak_rss` (VmHWM)."""
    return _status_kib(pid, "VmHWM") * 1024


def reset_peak_rss(pid: int) -> None:
    """Make VmHWM the current RSS (Linux >= 4.0: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def at_once(pid: int, call: Callable[[T], Answer], items: Sequence[T]) -> tuple[list[Answer], int]:
    """`call(item)` for every item at once, from threads: the answers, and how much the peak
    RSS of process `pid` grew meanwhile (bytes)."""
    before = rss_bytes(pid)
    reset_peak_rss(pid)
    with ThreadPoolExecutor(len(items)) as pool:
        answers = list(pool.map(call, items))
    return answers, peak_rss_bytes(pid) - before
