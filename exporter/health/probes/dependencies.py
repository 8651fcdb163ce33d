"""One round trip per dependency kind: Redis PING (+ INFO), `SELECT 1` on the databases.

Each function returns `(latency_seconds, details)` or raises; the runner applies the timeout and
turns exceptions into a password-free reason. Drivers without asyncio support are plain
functions (`BLOCKING_PROBES`) that the runner calls in a thread of their own (see `threads`).
Drivers are imported lazily so a kind that is not configured needs no driver installed (see the
`probes` extra).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, quote, unquote, urlsplit

from exporter.config.dependencies import Dependency

Reading = tuple[float, dict[str, float]]
Probe = Callable[[Dependency, float], Awaitable[Reading]]
BlockingProbe = Callable[[Dependency, float], Reading]


class DriverMissing(RuntimeError):
    """The Python driver for a configured dependency kind is not installed."""


async def probe_redis(dep: Dependency, timeout: float) -> Reading:
    """PING round trip, plus used memory and connected clients from INFO when allowed.

    PING alone decides up or down: managed servers and ACL users often may not run INFO, and
    its refusal only leaves the two gauges out.
    """
    import redis.asyncio as aioredis
    from redis.exceptions import ResponseError

    client = aioredis.from_url(
        dep.url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
    )
    try:
        await client.ping()  # connects; the timed PING below is then a pure round trip
        start = time.perf_counter()
        await client.ping()
        latency = time.perf_counter() - start
        try:
            info = await client.info()
        except ResponseError:  # NOPERM, or INFO renamed away
            return latency, {}
    finally:
        await client.aclose()
    details = {
        "used_memory_bytes": float(info.get("used_memory", 0)),
        "connected_clients": float(info.get("connected_clients", 0)),
    }
    return latency, details


async def probe_postgresql(dep: Dependency, timeout: float) -> Reading:
    """`SELECT 1` round trip over a fresh connection."""
    try:
        import psycopg
    except ImportError:
        raise DriverMissing("pip install 'exporter[postgresql]' (psycopg)") from None
    conn = await psycopg.AsyncConnection.connect(
        dep.url, connect_timeout=max(1, round(timeout)), autocommit=True
    )
    try:
        start = time.perf_counter()
        await conn.execute("SELECT 1")
        return time.perf_counter() - start, {}
    finally:
        await conn.close()


def probe_mysql(dep: Dependency, timeout: float) -> Reading:
    """`SELECT 1` round trip (MySQL or MariaDB); blocking."""
    try:
        import pymysql
    except ImportError:
        raise DriverMissing("pip install 'exporter[mysql]' (PyMySQL)") from None
    parts = urlsplit(dep.url)
    options = parse_qs(parts.query)
    conn = pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")) or None,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        charset=options.get("charset", ["utf8mb4"])[0],
    )
    try:
        with conn.cursor() as cursor:
            start = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            return time.perf_counter() - start, {}
    finally:
        conn.close()


def _file_path(url: str) -> str:
    # sqlite:///abs and SQLAlchemy's sqlite:////abs both name /abs (a file: URI would read
    # "//abs" as a host).
    return re.sub(r"^/{2,}", "/", unquote(urlsplit(url).path))


def probe_sqlite(dep: Dependency, timeout: float) -> Reading:
    """`SELECT 1` on the file, opened read-only; blocking."""
    # mode=ro: probing must never create an empty database where the real one is missing.
    # Quoted: a '?' or '#' in the file name would otherwise end the path and drop mode=ro.
    uri = f"file:{quote(_file_path(dep.url), safe='/')}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout)
    try:
        start = time.perf_counter()
        conn.execute("SELECT 1").fetchall()
        return time.perf_counter() - start, {}
    finally:
        conn.close()


def probe_duckdb(dep: Dependency, timeout: float) -> Reading:
    """`SELECT 1` on the file, opened read-only; blocking.

    DuckDB has no connect timeout: the runner's timeout and one-call-at-a-time thread bound it.
    """
    try:
        import duckdb
    except ImportError:
        raise DriverMissing("pip install 'exporter[duckdb]' (duckdb)") from None
    # read_only: a sidecar must not take DuckDB's single-writer lock from the application.
    conn = duckdb.connect(_file_path(dep.url), read_only=True)
    try:
        start = time.perf_counter()
        conn.execute("SELECT 1").fetchall()
        return time.perf_counter() - start, {}
    finally:
        conn.close()


PROBES: dict[str, Probe] = {
    "redis": probe_redis,
    "postgresql": probe_postgresql,
}
BLOCKING_PROBES: dict[str, BlockingProbe] = {
    "mysql": probe_mysql,
    "sqlite": probe_sqlite,
    "duckdb": probe_duckdb,
}
