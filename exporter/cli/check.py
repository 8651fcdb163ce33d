"""`exporter check`: validate settings and thresholds, and say what the sidecar would monitor."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from exporter.config import Settings, SettingsError, load_settings, unknown_variables
from exporter.config.dependencies import parse_dependency, parse_queues
from exporter.thresholds import format_duration, load_thresholds

# Kind or backend -> (importable module, extra that installs it).
_DRIVERS = {
    "postgresql": ("psycopg", "postgresql"),
    "mysql": ("pymysql", "mysql"),
    "duckdb": ("duckdb", "duckdb"),
    "rabbitmq": ("aio_pika", "rabbitmq"),
}


def _driver_note(kind: str) -> str:
    module, extra = _DRIVERS.get(kind, ("", ""))
    if module and importlib.util.find_spec(module) is None:
        return f"  (driver missing: pip install 'exporter[{extra}]')"
    return ""


def report(settings: Settings) -> list[str]:
    """Lines describing what would be monitored; raises `SettingsError` on a bad file."""
    thresholds = load_thresholds(settings.thresholds_file)
    source = settings.thresholds_file or "packaged default"
    lines = [
        f"service {settings.service_name} ({settings.environment}), "
        f"sidecar on {settings.host}:{settings.port}",
        f"host: CPU, memory, disk {', '.join(settings.disk_paths)}",
        f"probes every {settings.probe_interval_seconds:g} s, "
        f"timeout {settings.probe_timeout_seconds:g} s",
    ]
    dependencies = [parse_dependency(n, u) for n, u in settings.dependencies.items()]
    lines.append(f"dependencies: {len(dependencies)}")
    lines += [f"  {d.name} [{d.kind}] {d.safe_url}{_driver_note(d.kind)}" for d in dependencies]
    queues = parse_queues(settings.queues)
    lines.append(f"queues: {len(queues)}")
    lines += [
        f"  {q.backend}/{q.queue} on {q.safe_url}{_driver_note(q.backend)}" for q in queues
    ]
    lines.append(
        f"history: {settings.history_window_seconds:g} s every "
        f"{settings.history_interval_seconds:g} s"
    )
    lines.append(f"thresholds ({source}): {len(thresholds.thresholds)}, rates over "
                 f"{thresholds.render.rate_window}")
    for t in thresholds.items():
        lines.append(
            f"  {t.alert}: {t.signal} > {t.above:g} for {format_duration(t.for_seconds)} "
            f"[{t.severity}]"
        )
    lines.append(f"logs API reads: {settings.loki_url or Path(settings.log_dir)}")
    return lines


def run_check(thresholds_file: str | None = None, strict: bool = False,
              probe: bool = False) -> int:
    """Print the report; `SettingsError` propagates to the CLI (exit 2). `strict`: unknown
    EXPORTER_* variables are errors; `probe`: try every endpoint once (exit 1 if one fails)."""
    overrides = {"thresholds_file": thresholds_file} if thresholds_file else {}
    settings = load_settings(**overrides)
    unknown = unknown_variables(os.environ)
    if unknown and strict:
        raise SettingsError("; ".join(unknown))
    for line in report(settings):
        print(line)
    for problem in unknown:
        print(f"warning: {problem}")
    if probe:
        from exporter.cli.probe import probe_all

        results = probe_all(settings)
        print(f"reachable: {sum(ok for _, ok, _ in results)} of {len(results)}")
        for what, ok, reason in results:
            print(f"  {'ok  ' if ok else 'FAIL'} {what}: {reason}")
        if not all(ok for _, ok, _ in results):
            return 1
    print("ok")
    return 0
