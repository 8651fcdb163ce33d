"""The `exporter` command: `exporter serve [--demo]`, `demo`, `check`, `render`, `version`."""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from exporter._version import __version__
from exporter.config import (
    MULTIPROC_ENV,
    Settings,
    SettingsError,
    env_name,
    load_settings,
    multiprocess_directory,
    set_multiprocess_directory,
    unknown_variables,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exporter",
        description="Metrics, logs, errors and alerts for FastAPI services. "
        "Every option can also be set with an EXPORTER_* environment variable.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve", help="run the sidecar: status page (/), /metrics, /healthz and the /api/v1 APIs"
    )
    serve.add_argument("--host", help="bind address (EXPORTER_HOST, default 127.0.0.1)")
    serve.add_argument("--port", help="bind port (EXPORTER_PORT, default 9480)")
    serve.add_argument("--workers", help="worker processes (EXPORTER_WORKERS, default 1)")
    serve.add_argument(
        "--demo", action="store_true", default=None,
        help="also start the demo shop (exporter demo, its own process) and watch it",
    )
    serve.add_argument("--demo-error-ratio", help="share of the demo's checkouts that fail")
    serve.add_argument("--log-level", help="debug, info, warning, error or critical")
    demo = sub.add_parser(
        "demo", help="run the demo shop alone: an instrumented app with background traffic")
    demo.add_argument("--port", help="bind port (EXPORTER_PORT, default 9481 via "
                      "EXPORTER_DEMO_PORT)")
    sub.add_parser("version", help="print the version")
    check = sub.add_parser("check", help="validate settings and thresholds; show what is monitored")
    check.add_argument("--thresholds", help="thresholds file (EXPORTER_THRESHOLDS_FILE)")
    check.add_argument("--strict", action="store_true",
                       help="an EXPORTER_* variable no setting reads is an error, not a warning")
    check.add_argument("--probe", action="store_true",
                       help="also try every dependency, queue, target, Loki, Prometheus and "
                       "Alertmanager once, and say whether each answers")
    render = sub.add_parser(
        "render", help="write Prometheus rules, promtool tests and Grafana dashboards, or "
        "with --target kubernetes the same as Kubernetes objects in deploy/kubernetes/"
    )
    render.add_argument(
        "--target", choices=("stack", "kubernetes"), default="stack",
        help="stack (default): prometheus/, grafana/dashboards/, docs/signals.md; kubernetes: "
        "deploy/kubernetes/ (docs/kubernetes.md)",
    )
    render.add_argument("--thresholds", help="default: OUT/thresholds.yaml, else the packaged one")
    render.add_argument("--out", default=".", help="repository root to write into (default: .)")
    render.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 listing files that differ"
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {
        name: value
        for name in ("host", "port", "workers", "demo_error_ratio", "log_level")
        if (value := getattr(args, name)) is not None
    }
    if args.demo:
        from exporter.demo.launch import demo_service, demo_watch_defaults

        settings = _settings(overrides)
        with demo_service(settings) as address:
            overrides["targets"] = address
            overrides.update(demo_watch_defaults(settings))
            if not settings.dependencies:  # the shop's database, probed like yours would be
                database = settings.demo_database_url or (
                    f"sqlite:///{os.path.abspath(settings.data_dir)}/demo-shop.db")
                overrides["dependencies"] = {"shop-db": database}
            return _run_sidecar(overrides)
    return _run_sidecar(overrides)


def _settings(overrides: dict[str, Any]) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:  # name the flag the user typed, not only its variable
        message = str(exc)
        for name in overrides:
            message = message.replace(f"{env_name(name)}:", f"{_setting(name, overrides)}:")
        raise SettingsError(message) from None


def _run_sidecar(overrides: dict[str, Any]) -> int:
    settings = _settings(overrides)
    for problem in unknown_variables(os.environ):
        print(f"exporter: warning: {problem}", file=sys.stderr)
    from exporter.thresholds import load_thresholds

    load_thresholds(settings.thresholds_file)  # a bad file stops start-up before any worker
    _preflight(settings, overrides)
    # Worker processes read their settings from the environment: pass the flags on.
    for name, value in overrides.items():
        os.environ[env_name(name)] = json.dumps(value) if isinstance(value, dict) else str(value)

    import uvicorn

    if settings.workers > 1:
        created = _prepare_multiprocess_dir()
        try:
            uvicorn.run(
                "exporter.app:create_app_from_env",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                log_level=settings.log_level,
            )
        finally:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
        return 0
    from exporter.app import create_app

    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    """`exporter demo`: the demo shop alone, with its own defaults where nothing is set."""
    from exporter.demo.launch import SHOP_DEFAULTS

    overrides: dict[str, Any] = {name: value for name, value in SHOP_DEFAULTS.items()
                                 if env_name(name) not in os.environ}
    settings = _settings(overrides)
    overrides["port"] = args.port if args.port is not None else settings.demo_port
    settings = _settings(overrides)
    import uvicorn

    from exporter.demo.service import create_demo_app

    uvicorn.run(create_demo_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level)
    return 0


def _setting(field: str, overrides: dict[str, Any]) -> str:
    """How the user set `field`: the flag they typed, else the environment variable."""
    flag = "--" + field.replace("_", "-")
    return f"{flag} ({env_name(field)})" if field in overrides else env_name(field)


def _preflight(settings: Settings, overrides: dict[str, Any]) -> None:
    """What uvicorn would only report after start-up (or the log set-up as a traceback), as one
    line naming the setting: an unknown host, a port in use, a log folder we cannot write."""
    host, port = settings.host, settings.port
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise SettingsError(
            f"{_setting('host', overrides)}: cannot resolve {host!r} to an address to listen on "
            f"({exc.strerror})"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            raise SettingsError(
                f"{_setting('port', overrides)}: cannot listen on {host}:{port} ({exc.strerror}); "
                "choose another port or stop what uses it"
            ) from None
    log_dir = settings.log_dir
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=log_dir):
            pass
    except OSError as exc:
        raise SettingsError(
            f"{env_name('log_dir')}: cannot write log files in {str(log_dir)!r} ({exc.strerror})"
        ) from None


def _prepare_multiprocess_dir() -> str | None:
    """Workers share metric files in one directory; stale files from a previous run are removed.

    Returns the directory when it was created here (a temporary one, removed at the end)."""
    directory = multiprocess_directory()
    created = None
    if not directory:
        directory = created = tempfile.mkdtemp(prefix="exporter-metrics-")
        set_multiprocess_directory(directory)
        print(f"exporter: {MULTIPROC_ENV} not set; using {directory}", file=sys.stderr)
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)
    return created


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `exporter` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "version":
            print(__version__)
            return 0
        if args.command == "check":
            from exporter.cli.check import run_check

            return run_check(args.thresholds, strict=args.strict, probe=args.probe)
        if args.command == "demo":
            return _demo(args)
        if args.command == "render":
            from exporter.render.command import run_render

            return run_render(args.thresholds, args.out, args.check, args.target)
        return _serve(args)
    except SettingsError as exc:
        print(f"exporter: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

