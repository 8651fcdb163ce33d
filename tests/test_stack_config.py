"""The compose stack's files agree with each other and pass their own tools' checks.

Loki, Grafana, Promtail and Alloy cannot run here: their configs are checked for the structure
the stack relies on. Prometheus and Alertmanager configs go through promtool and amtool.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
EXPORTER_SERVICES = ("sidecar", "demo-app")
# What the shippers read. error_*.log and slow_requests_*.log are subsets of these (see
# test_the_files_not_shipped_are_subsets_of_those_shipped): shipping them would double lines.
LOG_KINDS = {"app": "app_*.log", "access": "access_*.log"}
NOT_SHIPPED = ("error_*.log", "slow_requests_*.log", "errors/errors_*.jsonl")
STREAM_LABELS = {"service", "env", "level"}
RENDER_ENV = {
    "SMTP_HOST": "smtp.example.org",
    "SMTP_PORT": "587",
    "SMTP_USERNAME": "alerts@example.org",
    "ALERT_EMAIL_FROM": "Alerts <alerts@example.org>",
    "ALERT_EMAIL_TO": "oncall+prod@example.org",
    "SLACK_CHANNEL": "#ops-alerts",
}


def _yaml(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def _environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: write environment as a mapping"
    return {str(k): str(v) for k, v in env.items()}


def _exposed_ports(service: str) -> set[int]:
    return {int(port) for port in SERVICES[service].get("expose", [])}


def _host_port(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host, int(port)


def _aliases(service: str) -> set[str]:
    networks = SERVICES[service].get("networks", {})
    return {alias for network in networks.values() for alias in (network or {}).get("aliases", [])}


def _services_at(host: str) -> set[str]:
    """The compose services that answer to `host`: by name, or by a network alias."""
    return {name for name in SERVICES if name == host or host in _aliases(name)}


# --- docker-compose.yml -------------------------------------------------------------------


def test_compose_runs_the_whole_stack() -> None:
    expected = {"sidecar", "demo-app", "redis", "prometheus", "alertmanager", "loki",
                "promtail", "alloy", "tempo", "grafana"}
    assert set(SERVICES) == expected


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_image_tag_is_pinned(service: str) -> None:
    image = SERVICES[service]["image"]
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"{service}: image {image!r} has no tag"
    assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{service}: pin {image!r}"


def test_promtail_is_pinned_to_its_last_release() -> None:
    # Promtail reached end of life on 2026-03-02; 3.6.11 is the last tag published.
    assert SERVICES["promtail"]["image"] == "grafana/promtail:3.6.11"
    assert SERVICES["loki"]["image"].startswith("grafana/loki:3.")
    assert SERVICES["prometheus"]["image"].startswith("prom/prometheus:v2.")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_has_a_healthcheck(service: str) -> None:
    check = SERVICES[service].get("healthcheck", {})
    assert isinstance(check.get("test"), list) and check["test"][0] in {"CMD", "CMD-SHELL"}
    assert check.get("interval") and check.get("timeout") and check.get("retries")


def test_healthchecks_use_tools_the_images_have() -> None:
    # Loki's image is distroless since 3.6 (no shell, no wget): only its own -health works.
    assert SERVICES["loki"]["healthcheck"]["test"] == ["CMD", "/usr/bin/loki", "-health"]
    for service in EXPORTER_SERVICES:
        command = " ".join(SERVICES[service]["healthcheck"]["test"])
        assert command.startswith("CMD python -c")


def _healthcheck_path(service: str) -> str:
    command = " ".join(SERVICES[service]["healthcheck"]["test"])
    match = re.search(r"os\.environ\['EXPORTER_PORT'\] \+ '(/[a-z]+)'", command)
    assert match is not None, f"{service}: the healthcheck reads no EXPORTER_PORT path"
    return match.group(1)


def test_each_exporter_service_answers_its_healthcheck(tmp_path: Path) -> None:
    # The app each command starts (`serve`: the sidecar's; `demo`: the shop, which like your
    # app has /metrics but no /healthz) answers 200 on the path its healthcheck asks for.
    from exporter import load_settings
    from exporter.app import create_app
    from exporter.demo.service import create_demo_app
    from tests.asgi import request

    settings = load_settings(log_dir=tmp_path / "logs", data_dir=tmp_path / "data",
                             log_stdout=False)
    apps = {"serve": create_app, "demo": create_demo_app}
    for service in EXPORTER_SERVICES:
        app = apps[SERVICES[service]["command"][0]](settings)
        reply = request(app, "GET", _healthcheck_path(service))  # no lifespan: nothing starts
        assert reply.status_code == 200, (service, _healthcheck_path(service))
    assert _healthcheck_path("sidecar") == "/healthz"
    assert _healthcheck_path("demo-app") == "/metrics"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_bind_mount_exists_in_the_repository(service: str) -> None:
    named = set(COMPOSE["volumes"])
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = volume.split(":")
        assert target.startswith("/"), volume
        if source.startswith("."):
            assert (ROOT / source).exists(), f"{service}: {source} is not in the repository"
        else:
            assert source in named, f"{service}: volume {source!r} is not declared"


def test_state_lives_on_named_volumes() -> None:
    mounts = {
        service: {v.split(":")[1]: v.split(":")[0] for v in spec.get("volumes", [])}
        for service, spec in SERVICES.items()
    }
    assert mounts["prometheus"]["/prometheus"] == "prometheus-data"
    assert mounts["alertmanager"]["/alertmanager"] == "alertmanager-data"
    assert mounts["loki"]["/loki"] == "loki-data"
    assert mounts["grafana"]["/var/lib/grafana"] == "grafana-data"
    assert mounts["promtail"]["/var/lib/promtail"] == "promtail-positions"
    assert mounts["tempo"]["/var/tempo"] == "tempo-data"
    for service in EXPORTER_SERVICES:
        env = _environment(service)
        log_dir = env.get("EXPORTER_LOG_DIR", "/var/lib/exporter/logs")
        data_dir = env.get("EXPORTER_DATA_DIR", "/var/lib/exporter/data")
        assert mounts[service][log_dir] in COMPOSE["volumes"]
        assert mounts[service][data_dir] in COMPOSE["volumes"]


def _log_volume(service: str) -> str:
    log_dir = _environment(service).get("EXPORTER_LOG_DIR", "/var/lib/exporter/logs")
    (volume,) = [v.split(":")[0] for v in SERVICES[service]["volumes"]
                 if v.split(":")[1] == log_dir]
    return volume


def test_log_shippers_read_each_exporters_log_volume_read_only() -> None:
    log_volumes = {_log_volume(service) for service in EXPORTER_SERVICES}
    for shipper in ("promtail", "alloy"):
        mounted = [v.split(":") for v in SERVICES[shipper]["volumes"]]
        shipped = {source: target for source, target, *mode in mounted
                   if target.startswith("/var/log/exporter/")}
        # Each log folder once (twice would ship every line twice), read-only, one level
        # under /var/log/exporter/ where the shippers' */app_*.log patterns look.
        assert set(shipped) == log_volumes, shipper
        assert len(set(shipped.values())) == len(shipped)
        for source, target, *mode in mounted:
            if source in log_volumes:
                assert mode == ["ro"] and Path(target).parent == Path("/var/log/exporter")


def test_one_log_shipper_per_profile_and_alloy_is_the_default() -> None:
    assert SERVICES["alloy"]["profiles"] == ["alloy"]
    assert SERVICES["promtail"]["profiles"] == ["promtail"]
    env_example = _env_example()
    assert env_example["COMPOSE_PROFILES"] == "alloy"


def test_exporter_services_listen_where_they_are_exposed() -> None:
    for service in EXPORTER_SERVICES:
        spec = SERVICES[service]
        env = _environment(service)
        assert spec["build"] == "."
        assert _exposed_ports(service) == {int(env["EXPORTER_PORT"])}
        assert env["EXPORTER_SERVICE_NAME"] == service



def test_the_demo_runs_apart_and_the_sidecar_watches_it_as_it_would_your_service() -> None:
    # As `make run` does, apart: `exporter demo` in its own container, the sidecar `serve`
    # watching it as a target. Both commands are what the real CLI accepts.
    from exporter.cli import _parser
    from exporter.config.targets import parse_targets

    demo = _parser().parse_args(SERVICES["demo-app"]["command"])
    assert demo.command == "demo"
    port = int(_environment("demo-app")["EXPORTER_PORT"])  # what the healthcheck reads
    assert int(demo.port) == port and _exposed_ports("demo-app") == {port}
    sidecar = _parser().parse_args(SERVICES["sidecar"]["command"])
    assert sidecar.command == "serve" and not sidecar.demo  # no second demo inside it
    (target,) = parse_targets(_environment("sidecar")["EXPORTER_TARGETS"])
    url = urlsplit(target.url)
    assert (url.hostname, url.port, url.path) == ("demo-app", port, "/metrics")
    # Prometheus scrapes the same address: the page and the dashboards see one service.
    assert ("exporter", f"demo-app:{port}", {"service": "demo-app"}) in _scrape_targets()


def test_the_sidecar_shares_the_watched_services_log_and_data_folders() -> None:
    # The live tail and the logs API read the log folder, the error groups come from the
    # error store in the data folder: the sidecar mounts the demo's own volumes there.
    def folders(service: str) -> dict[str, str]:
        env = _environment(service)
        wanted = {env.get("EXPORTER_LOG_DIR", "/var/lib/exporter/logs"): "logs",
                  env.get("EXPORTER_DATA_DIR", "/var/lib/exporter/data"): "data"}
        return {wanted[v.split(":")[1]]: v.split(":")[0] for v in SERVICES[service]["volumes"]
                if v.split(":")[1] in wanted}

    assert folders("sidecar") == folders("demo-app") == {"logs": "app-logs", "data": "app-data"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "EXPORTER_LOG_DIR=/var/lib/exporter/logs" in dockerfile
    assert "EXPORTER_DATA_DIR=/var/lib/exporter/data" in dockerfile


def test_the_sidecar_probes_the_compose_redis_as_dependency_and_queue() -> None:
    from exporter.config.dependencies import parse_dependency, parse_dependency_map, parse_queue

    env = _environment("sidecar")
    dependencies = [parse_dependency(name, url) for name, url in
                    parse_dependency_map(env["EXPORTER_DEPENDENCIES"]).items()]
    queues = [parse_queue(url) for url in env["EXPORTER_QUEUES"].split(",")]
    assert [(d.kind, urlsplit(d.url).hostname) for d in dependencies] == [("redis", "redis")]
    assert [(q.backend, q.queue, urlsplit(q.url).hostname) for q in queues] == [
        ("redis", "celery", "redis")]
    assert 6379 in _exposed_ports("redis")
    assert "redis" in SERVICES["sidecar"]["depends_on"]


def test_dockerfile_installs_the_package_and_runs_serve() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    # With the probe drivers: a sidecar pointed at PostgreSQL, MySQL, DuckDB or RabbitMQ works.
    installs = [m.start() for m in re.finditer(r"pip install '\.\[probes\]'", text)]
    assert len(installs) == 2
    assert re.search(r"^probes = \[", (ROOT / "pyproject.toml").read_text(), re.M)
    # The dependency layer comes from pyproject.toml alone: a code change reuses it.
    code = text.index("COPY exporter ")
    assert text.index("COPY pyproject.toml ./") < installs[0] < text.index("COPY README.md") < code
    assert code < installs[1]
    assert 'ENTRYPOINT ["exporter"]' in text and 'CMD ["serve"]' in text
    assert "EXPORTER_HOST=0.0.0.0" in text  # the default 127.0.0.1 is unreachable in a container
    assert re.search(r"^USER \w+", text, re.M)
    # The build copies only what the package build reads: pyproject.toml, its readme, the code.
    copied = {name for line in re.findall(r"^COPY (.+) \S+$", text, re.M) for name in line.split()}
    readme = re.search(r'^readme = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert readme is not None
    assert {"pyproject.toml", readme.group(1), "exporter"} <= copied
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".env", ".git"} <= set(ignored)


def test_prometheus_runs_with_exemplars_lifecycle_and_the_rules_dir() -> None:
    args = SERVICES["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in args
    assert "--web.enable-lifecycle" in args
    assert "--web.enable-remote-write-receiver" in args  # the OTLP path's metrics (Alloy)
    assert "--config.file=/etc/prometheus/prometheus.yml" in args
    assert "./prometheus:/etc/prometheus:ro" in SERVICES["prometheus"]["volumes"]
    assert (ROOT / "prometheus" / "rules").is_dir()


def test_grafana_has_no_anonymous_access_and_takes_its_password_from_env() -> None:
    env = _environment("grafana")
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    # `:?` makes compose refuse to start without the variable: no default password exists.
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"])
    assert "3000" in SERVICES["grafana"]["ports"][0].split(":")
    volumes = SERVICES["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in volumes


def test_the_api_token_is_required_and_shared_with_alertmanager() -> None:
    for service in EXPORTER_SERVICES:
        assert _environment(service)["EXPORTER_API_TOKEN"].startswith("${EXPORTER_API_TOKEN:?")
    assert COMPOSE["secrets"]["exporter_api_token"] == {"environment": "EXPORTER_API_TOKEN"}


def test_service_secrets_are_declared() -> None:
    declared = set(COMPOSE["secrets"])
    for service, spec in SERVICES.items():
        assert set(spec.get("secrets", [])) <= declared, service


def test_host_ports_bind_to_the_configured_address() -> None:
    for service, spec in SERVICES.items():
        for port in spec.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{service}: {port}"


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not NAME=value"
            pairs[name.strip()] = value
    return pairs


def test_env_example_lists_every_variable_the_compose_file_uses() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    used |= {spec["environment"] for spec in COMPOSE["secrets"].values()}
    listed = set(_env_example())
    assert used, "the compose file uses no variables?"
    assert used - listed == set(), "add these to .env.example"
    assert listed - used - {"COMPOSE_PROFILES"} == set(), "unused in docker-compose.yml"


def test_env_example_holds_no_secret_values_and_env_is_ignored() -> None:
    pairs = _env_example()
    for name in ("EXPORTER_API_TOKEN", "GRAFANA_ADMIN_PASSWORD", "SMTP_AUTH_PASSWORD",
                 "SLACK_API_URL"):
        assert pairs[name] == "", f"{name} must be empty in .env.example"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def _check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """Validate `path` against the Compose Specification's JSON schema (the copy that
    check-jsonschema vendors), the same schema `docker compose config` validates with."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)], capture_output=True, text=True,
    )


def test_compose_file_matches_the_compose_specification_schema() -> None:
    result = _check_compose_schema(ROOT / "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_misspelt_key(tmp_path: Path) -> None:
    broken = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    broken["services"]["grafana"]["healthchek"] = broken["services"]["grafana"].pop("healthcheck")
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = _check_compose_schema(path)
    assert result.returncode != 0
    assert "healthchek" in result.stdout + result.stderr


# --- prometheus/prometheus.yml ------------------------------------------------------------
PROMETHEUS = _yaml("prometheus/prometheus.yml")


def _scrape_targets() -> list[tuple[str, str, dict[str, str]]]:
    return [
        (job["job_name"], target, group.get("labels", {}))
        for job in PROMETHEUS["scrape_configs"]
        for group in job.get("static_configs", [])
        for target in group["targets"]
    ]


def test_prometheus_scrapes_every_part_of_the_stack() -> None:
    jobs = {job["job_name"] for job in PROMETHEUS["scrape_configs"]}
    assert jobs == {"exporter", "log-shipper", "alertmanager", "loki", "tempo", "grafana",
                    "prometheus"}
    hosts = {_host_port(target)[0] for _, target, _ in _scrape_targets()}
    assert hosts == {"sidecar", "demo-app", "log-shipper", "alertmanager", "loki", "tempo",
                     "grafana", "prometheus"}


def test_every_scrape_target_is_a_compose_service_on_an_exposed_port() -> None:
    for job, target, _ in _scrape_targets():
        host, port = _host_port(target)
        services = _services_at(host)
        assert services, f"job {job}: {host} is neither a compose service nor an alias"
        for service in services:
            assert port in _exposed_ports(service), f"job {job}: {service} does not expose {port}"


def test_the_running_log_shipper_is_scraped_as_log_shipper() -> None:
    # Alloy and Promtail share the alias and the port; only the one whose profile is on runs,
    # so the job has one target that is up, and none that is down.
    (target,) = [t for job, t, _ in _scrape_targets() if job == "log-shipper"]
    host, port = _host_port(target)
    assert _services_at(host) == {"alloy", "promtail"}
    assert f"--server.http.listen-addr=0.0.0.0:{port}" in SERVICES["alloy"]["command"]
    assert PROMTAIL["server"]["http_listen_port"] == port
    for shipper in ("alloy", "promtail"):
        assert f"/dev/tcp/127.0.0.1/{port} " in " ".join(SERVICES[shipper]["healthcheck"]["test"])


def test_each_exporter_target_is_labelled_with_its_service_name() -> None:
    for job, target, labels in _scrape_targets():
        host, _ = _host_port(target)
        assert labels.get("service"), f"{target} has no service label"
        if job == "exporter":
            assert labels["service"] == _environment(host)["EXPORTER_SERVICE_NAME"]


def test_prometheus_sends_alerts_to_the_alertmanager_service() -> None:
    targets = [
        target
        for manager in PROMETHEUS["alerting"]["alertmanagers"]
        for group in manager["static_configs"]
        for target in group["targets"]
    ]
    assert targets == ["alertmanager:9093"]
    assert 9093 in _exposed_ports("alertmanager")


def test_rule_files_resolve_to_the_rules_dir_here_and_in_the_container() -> None:
    # Prometheus resolves rule_files against the config file's directory: the compose file
    # mounts ./prometheus on the directory of --config.file.
    assert PROMETHEUS["rule_files"] == ["rules/*.yml"]
    config = next(a for a in SERVICES["prometheus"]["command"] if a.startswith("--config.file="))
    container_dir = str(Path(config.partition("=")[2]).parent)
    assert f"./prometheus:{container_dir}:ro" in SERVICES["prometheus"]["volumes"]
    assert sorted(p.name for p in (ROOT / "prometheus" / "rules").glob("*.yml")) == [
        "alerts.yml", "recording.yml"]


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool", "prometheus")
    return subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)


def test_promtool_accepts_the_config_and_checks_the_committed_rules() -> None:
    result = _check_config(ROOT / "prometheus" / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout
    assert "prometheus/rules/alerts.yml" in result.stdout
    assert "prometheus/rules/recording.yml" in result.stdout


def test_promtool_check_config_fails_on_a_broken_rule_file(tmp_path: Path) -> None:
    # The same command as in the README, on a copy with one broken rule file next to the rules.
    shutil.copytree(ROOT / "prometheus", tmp_path / "prometheus",
                    ignore=shutil.ignore_patterns("tests"))
    (tmp_path / "prometheus" / "rules" / "broken.yml").write_text(
        "groups:\n  - name: broken\n    rules:\n      - record: x:y:z\n        expr: sum(up\n")
    result = _check_config(tmp_path / "prometheus" / "prometheus.yml")
    assert result.returncode != 0
    assert "broken.yml" in result.stdout + result.stderr


def test_promtool_rejects_a_broken_config(tmp_path: Path) -> None:
    # The check above can fail: an unknown field makes promtool exit non-zero.
    promtool = require_binary("promtool", "prometheus")
    broken = tmp_path / "prometheus.yml"
    broken.write_text(yaml.safe_dump(dict(PROMETHEUS, scrape_intervall="15s")))
    result = subprocess.run([promtool, "check", "config", str(broken)],
                            capture_output=True, text=True)
    assert result.returncode != 0


def _documented_celery_job() -> dict[str, Any]:
    """The scrape job of docs/celery.md (the yaml block under "### Scrape job")."""
    text = (ROOT / "docs" / "celery.md").read_text()
    block = re.search(r"^### Scrape job\n+```yaml\n(.*?)^```", text, re.M | re.S)
    assert block is not None, "docs/celery.md: no yaml block under ### Scrape job"
    (job,) = yaml.safe_load(block.group(1))["scrape_configs"]
    return dict(job)


def _commented_celery_job() -> dict[str, Any]:
    """The job prometheus/prometheus.yml holds commented out, uncommented."""
    lines = (ROOT / "prometheus" / "prometheus.yml").read_text().splitlines()
    start = lines.index("  # - job_name: celery")
    block = []
    for line in lines[start:]:
        if not line.startswith("  # ") or (block and line.startswith("  # - ")):
            break
        block.append(line.removeprefix("  # "))
    (job,) = yaml.safe_load("\n".join(block))
    return dict(job)


def test_the_celery_job_is_documented_with_a_service_label_and_kept_commented_out(
    tmp_path: Path,
) -> None:
    job = _documented_celery_job()
    assert _commented_celery_job() == job
    for group in job["static_configs"]:
        assert group.get("labels", {}).get("service"), group
    # Uncommented, it is a valid job (compose runs no worker: that is why it is commented).
    promtool = require_binary("promtool", "prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(
        dict(PROMETHEUS, rule_files=[], scrape_configs=[*PROMETHEUS["scrape_configs"], job])))
    result = subprocess.run([promtool, "check", "config", str(config)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_documented_celery_job_gives_the_celery_rules_a_service(tmp_path: Path) -> None:
    # The worker's series carry task, queue and state only: `service` comes from the scrape
    # job, and every Celery recording rule groups by it.
    from exporter.signals import CELERY_RECORDING_GROUP

    promtool = require_binary("promtool", "prometheus")
    job = _documented_celery_job()
    series = []
    for group in job["static_configs"]:
        for target in group["targets"]:
            labels = {"job": job["job_name"], "instance": target, **group.get("labels", {}),
                      "task": "app.tasks.charge", "queue": "celery"}
            inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
            series += [
                {"series": f'celery_tasks_total{{{inner},state="succeeded"}}', "values": "0+9x40"},
                {"series": f'celery_tasks_total{{{inner},state="failed"}}', "values": "0+1x40"},
                {"series": f'celery_task_duration_seconds_bucket{{{inner},le="0.5"}}',
                 "values": "0+9x40"},
                {"series": f'celery_task_duration_seconds_bucket{{{inner},le="+Inf"}}',
                 "values": "0+10x40"},
            ]
    recording = yaml.safe_load((ROOT / "prometheus" / "rules" / "recording.yml").read_text())
    (celery,) = [g for g in recording["groups"] if g["name"] == CELERY_RECORDING_GROUP]
    services = sorted({g.get("labels", {}).get("service", "") for g in job["static_configs"]})
    assert all(services), "the documented job sets no service label"
    tests = {
        "rule_files": [str(ROOT / "prometheus" / "rules" / "recording.yml")],
        "evaluation_interval": "15s",
        "tests": [{"interval": "15s", "input_series": series, "promql_expr_test": [
            {"expr": f"count by (service) ({rule['record']})", "eval_time": "10m",
             "exp_samples": [{"labels": f'{{service="{s}"}}', "value": 1} for s in services]}
            for rule in celery["rules"]]}],
    }
    path = tmp_path / "celery_test.yml"
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- alertmanager/ ------------------------------------------------------------------------

ALERTMANAGER = _yaml("alertmanager/alertmanager.yml")
WEBHOOK_URL = "http://sidecar:9480/api/v1/observability/alerts/webhook"


def _render(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run render.sh as the container would, with `true` instead of alertmanager."""
    template = tmp_path / "alertmanager.yml"
    # Templates are looked up where the repository keeps them, so amtool parses them too.
    template.write_text(
        (ROOT / "alertmanager" / "alertmanager.yml").read_text().replace(
            "/etc/alertmanager/templates/", str(ROOT / "alertmanager" / "templates") + "/"
        )
    )
    return subprocess.run(
        ["sh", str(ROOT / "alertmanager" / "render.sh"), "--storage.path=/alertmanager"],
        env={
            "PATH": os.environ["PATH"],
            "AM_CONFIG_TEMPLATE": str(template),
            "AM_CONFIG_RENDERED": str(tmp_path / "rendered.yml"),
            "AM_BINARY": "echo",
            **env,
        },
        capture_output=True, text=True,
    )


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    amtool = require_binary("amtool", "prometheus-alertmanager")
    return subprocess.run([amtool, *args], capture_output=True, text=True)


def test_amtool_accepts_the_config_as_committed() -> None:
    result = _amtool("check-config", str(ROOT / "alertmanager" / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_config_passes_amtool_with_templates(tmp_path: Path) -> None:
    result = _render(tmp_path, RENDER_ENV)
    assert result.returncode == 0, result.stderr
    rendered = tmp_path / "rendered.yml"
    # render.sh hands the rendered file and the container's arguments to alertmanager.
    assert result.stdout.split() == [f"--config.file={rendered}", "--storage.path=/alertmanager"]
    check = _amtool("check-config", str(rendered))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "1 templates" in check.stdout
    config = yaml.safe_load(rendered.read_text())
    assert config["global"]["smtp_smarthost"] == "smtp.example.org:587"
    assert config["global"]["smtp_from"] == "Alerts <alerts@example.org>"
    assert "${" not in rendered.read_text()


def test_render_keeps_values_with_sed_and_yaml_special_characters(tmp_path: Path) -> None:
    odd = "ops&dev|team/#1 <a@b.c>: x"
    result = _render(tmp_path, {**RENDER_ENV, "ALERT_EMAIL_TO": odd})
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "rendered.yml").read_text())
    critical = next(r for r in config["receivers"] if r["name"] == "critical")
    assert critical["email_configs"][0]["to"] == odd


def test_render_names_a_missing_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in RENDER_ENV.items() if k != "SLACK_CHANNEL"}
    result = _render(tmp_path, env)
    assert result.returncode != 0
    assert "SLACK_CHANNEL is not set" in result.stderr
    assert result.stdout == ""  # alertmanager is not started on a half-rendered file


@pytest.mark.parametrize("value", ['a"b', "a\\b"])
def test_render_refuses_values_that_would_break_the_yaml(tmp_path: Path, value: str) -> None:
    result = _render(tmp_path, {**RENDER_ENV, "SMTP_USERNAME": value})
    assert result.returncode != 0
    assert "SMTP_USERNAME contains a quote, backslash or line break" in result.stderr
    assert value not in result.stderr  # the value itself may be sensitive


def test_secrets_are_read_from_files_never_inlined() -> None:
    glob = ALERTMANAGER["global"]
    assert glob["smtp_auth_password_file"] == "/run/secrets/smtp_auth_password"
    assert glob["slack_api_url_file"] == "/run/secrets/slack_api_url"
    assert "smtp_auth_password" not in glob and "slack_api_url" not in glob
    mounted = set(SERVICES["alertmanager"]["secrets"])
    assert mounted == {"smtp_auth_password", "slack_api_url", "exporter_api_token"}
    placeholders = set(re.findall(r"\$\{(\w+)\}",
                                  (ROOT / "alertmanager" / "alertmanager.yml").read_text()))
    assert placeholders == set(RENDER_ENV)
    assert placeholders <= set(_environment("alertmanager"))
    assert SERVICES["alertmanager"]["entrypoint"] == ["/bin/sh", "/etc/alertmanager/render.sh"]


def test_every_receiver_notifies_the_sidecar_webhook_with_resolved() -> None:
    for receiver in ALERTMANAGER["receivers"]:
        hooks = receiver["webhook_configs"]
        assert [hook["url"] for hook in hooks] == [WEBHOOK_URL], receiver["name"]
        assert hooks[0]["send_resolved"] is True
        auth = hooks[0]["http_config"]["authorization"]
        assert auth["credentials_file"] == "/run/secrets/exporter_api_token"
    host, port = _host_port(urlsplit(WEBHOOK_URL).netloc)
    assert host == "sidecar" and port in _exposed_ports("sidecar")


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical"], "critical"),
        (["severity=warning"], "warning"),
        (["severity=info"], "sidecar"),
        ([], "sidecar"),
    ],
)
def test_routes_by_severity(labels: list[str], receiver: str) -> None:
    result = _amtool("config", "routes", "test",
                     "--config.file", str(ROOT / "alertmanager" / "alertmanager.yml"),
                     "alertname=HighErrorRate", "service=demo-app", *labels)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


def test_groups_by_alertname_and_service_and_inhibits_warnings() -> None:
    assert ALERTMANAGER["route"]["group_by"] == ["alertname", "service"]
    assert ALERTMANAGER["inhibit_rules"] == [{
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["alertname", "service"],
    }, {
        "source_matchers": ['alertname=~"TargetDown|DependencyDown"', 'severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["service"],
    }]
    receivers = {r["name"]: r for r in ALERTMANAGER["receivers"]}
    assert receivers["critical"]["email_configs"][0]["to"] == "${ALERT_EMAIL_TO}"
    assert "slack_configs" in receivers["critical"] and "slack_configs" in receivers["warning"]


def _alert(name: str, service: str, severity: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, "service": service, "severity": severity}}


def test_a_down_target_or_dependency_silences_the_warnings_of_its_service(
    tmp_path: Path,
) -> None:
    # amtool cannot test inhibitions: a real Alertmanager with the committed inhibit rules.
    from tests.prometheus_stack import run_alertmanager

    config = {"route": {"receiver": "none", "group_by": ["alertname", "service"]},
              "receivers": [{"name": "none"}], "inhibit_rules": ALERTMANAGER["inhibit_rules"]}
    alerts = [
        _alert("TargetDown", "demo-app", "critical"),
        _alert("HighApiLatency", "demo-app", "warning"),
        _alert("DependencyDown", "sidecar", "critical"),
        _alert("HighRedisLatency", "sidecar", "warning"),
        _alert("HighErrorRate", "worker", "critical"),
        _alert("HighErrorRate", "worker", "warning"),  # a warning twin, if one existed
        _alert("HighApiLatency", "worker", "warning"),  # no cause above: it stays
        _alert("DiskAlmostFull", "demo-app", "critical"),  # critical: never inhibited
    ]
    expected = {("HighApiLatency", "demo-app"), ("HighRedisLatency", "sidecar"),
                ("HighErrorRate", "worker")}
    with run_alertmanager(tmp_path, config) as url:
        httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=5.0).raise_for_status()
        deadline = time.monotonic() + 10.0
        while True:
            state = httpx.get(f"{url}/api/v2/alerts", timeout=5.0).json()
            inhibited = {(a["labels"]["alertname"], a["labels"]["service"]) for a in state
                         if a["status"]["inhibitedBy"]}
            if (len(state) == len(alerts) and inhibited == expected) or (
                    time.monotonic() > deadline):
                break
            time.sleep(0.2)
    assert len(state) == len(alerts)
    assert inhibited == expected


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ("exporter.subject", "["),
        ("exporter.text", "since "),
        ("exporter.email.html", "<table"),
        ("exporter.slack.color", "warning"),
        ("exporter.dashboard_url", ""),
    ],
)
def test_notification_templates_render(definition: str, expected: str) -> None:
    result = _amtool("template", "render",
                     "--template.glob", str(ROOT / "alertmanager" / "templates" / "*.tmpl"),
                     "--template.text", '{{ template "' + definition + '" . }}')
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


# --- loki/ --------------------------------------------------------------------------------

LOKI = _yaml("loki/loki.yml")


def test_loki_stores_on_the_filesystem_with_tsdb_v13() -> None:
    assert LOKI["auth_enabled"] is False
    assert LOKI["server"]["http_listen_port"] == 3100 and 3100 in _exposed_ports("loki")
    assert LOKI["common"]["replication_factor"] == 1
    assert LOKI["common"]["path_prefix"] == "/loki"  # the loki-data volume
    period = LOKI["schema_config"]["configs"][-1]
    assert (period["store"], period["object_store"], period["schema"]) == (
        "tsdb", "filesystem", "v13")
    assert period["index"]["period"] == "24h"  # retention works per daily table


def test_loki_keeps_logs_30_days_through_the_compactor() -> None:
    compactor = LOKI["compactor"]
    assert compactor["retention_enabled"] is True
    assert compactor["delete_request_store"] == "filesystem"
    assert compactor["working_directory"].startswith("/loki/")
    assert LOKI["limits_config"]["retention_period"] == "720h"


def _hours(duration: str) -> int:
    match = re.fullmatch(r"(\d+)h", duration)
    assert match is not None, f"write {duration!r} in hours"
    return int(match.group(1))


def test_loki_accepts_lines_as_old_as_the_files_the_shippers_read() -> None:
    # A shipper that meets existing daily files sends their lines from the start: Loki must not
    # refuse the ones the exporter still keeps (and the retention keeps them as long).
    from exporter.config import Settings

    limits = LOKI["limits_config"]
    kept_days = Settings.model_fields["log_retention_days"].default
    assert limits["reject_old_samples"] is True
    assert _hours(limits["reject_old_samples_max_age"]) == kept_days * 24
    assert _hours(limits["retention_period"]) == kept_days * 24


def test_loki_limits_are_set_and_structured_metadata_allowed() -> None:
    limits = LOKI["limits_config"]
    assert limits["allow_structured_metadata"] is True
    for key in ("ingestion_rate_mb", "ingestion_burst_size_mb", "per_stream_rate_limit",
                "max_line_size", "max_label_names_per_series", "max_global_streams_per_user",
                "reject_old_samples", "reject_old_samples_max_age",
                "max_entries_limit_per_query", "max_query_series"):
        assert key in limits, f"limits_config.{key} is not set"
    assert limits["max_label_names_per_series"] >= len(STREAM_LABELS) + 1


# --- promtail/ and alloy/ -----------------------------------------------------------------

PROMTAIL = _yaml("promtail/promtail.yml")


def _promtail_job() -> dict[str, Any]:
    (job,) = PROMTAIL["scrape_configs"]
    return dict(job)


def _promtail_stages() -> dict[str, Any]:
    return {name: body for stage in _promtail_job()["pipeline_stages"]
            for name, body in stage.items()}


def _promtail_paths() -> dict[str, str]:
    return {group["labels"]["kind"]: group["labels"]["__path__"]
            for group in _promtail_job()["static_configs"]}


def _matching_kinds(paths: dict[str, str], file: str) -> list[str]:
    return [kind for kind, pattern in paths.items() if fnmatch.fnmatchcase(file, pattern)]


def test_promtail_tails_the_app_and_access_files_of_every_exporter_and_nothing_else() -> None:
    paths = _promtail_paths()
    assert set(paths) == set(LOG_KINDS)
    for service in EXPORTER_SERVICES:
        base = f"/var/log/exporter/{service}"
        for kind, name in LOG_KINDS.items():
            day_file = f"{base}/{name.replace('*', '2026-03-02')}"
            assert _matching_kinds(paths, day_file) == [kind]
        for name in NOT_SHIPPED:
            assert _matching_kinds(paths, f"{base}/{name.replace('*', '2026-03-02')}") == []


def test_the_files_not_shipped_are_subsets_of_those_shipped(tmp_path: Path) -> None:
    # Every ERROR line also goes to app_*, every slow access line also to access_*: the shippers
    # lose nothing by skipping error_* and slow_requests_*.
    from exporter import load_settings, setup_logging
    from exporter.http.middleware import CompletedRequest

    settings = load_settings(log_dir=tmp_path, data_dir=tmp_path / "data", log_stdout=False,
                             slow_request_seconds=0.1, service_name="shop")
    sinks = setup_logging(settings, CollectorRegistry())
    try:
        logging.getLogger("shop").error("payment failed")
        logging.getLogger("shop").info("paid")
        sinks.write_entry(time.time(), "critical", {"message": "ingested", "service": "shop"})
        for seconds, status in ((0.01, 200), (0.5, 200), (0.3, 503)):
            sinks.observe_request(CompletedRequest(
                "GET", "/pay", "/pay", status, seconds, "0" * 32, "0" * 16, None, None))
        assert sinks.files.flush()
    finally:
        sinks.close()

    def lines(pattern: str) -> list[str]:
        return [line for path in tmp_path.glob(pattern) for line in path.read_text().splitlines()]

    errors, slow = lines("error_*.log"), lines("slow_requests_*.log")
    assert len(errors) == 2 and len(slow) == 2
    assert set(errors) <= set(lines("app_*.log"))
    assert set(slow) <= set(lines("access_*.log"))


def test_promtail_labels_only_service_env_level_and_kind() -> None:
    stages = _promtail_stages()
    assert set(stages["json"]["expressions"]) >= STREAM_LABELS | {"trace_id", "ts"}
    assert set(stages["labels"]) == STREAM_LABELS
    static = {key for group in _promtail_job()["static_configs"]
              for key in group["labels"] if not key.startswith("__")}
    assert static == {"kind"}
    assert stages["labeldrop"] == ["filename"]  # daily file names would open new streams


def test_promtail_keeps_trace_id_out_of_labels() -> None:
    stages = _promtail_stages()
    assert "trace_id" not in stages["labels"]
    assert set(stages["structured_metadata"]) == {"trace_id"}


def test_promtail_takes_the_timestamp_from_ts() -> None:
    timestamp = _promtail_stages()["timestamp"]
    assert (timestamp["source"], timestamp["format"]) == ("ts", "RFC3339Nano")


def test_promtail_positions_and_push_url_fit_the_compose_file() -> None:
    positions = Path(PROMTAIL["positions"]["filename"])
    assert f"promtail-positions:{positions.parent}" in SERVICES["promtail"]["volumes"]
    (client,) = PROMTAIL["clients"]
    url = urlsplit(client["url"])
    host, port = _host_port(url.netloc)
    assert (host, url.path) == ("loki", "/loki/api/v1/push") and port in _exposed_ports("loki")
    assert PROMTAIL["server"]["http_listen_port"] in _exposed_ports("promtail")


ALLOY = (ROOT / "alloy" / "config.alloy").read_text()


def _alloy_block(header: str, text: str = ALLOY) -> str:
    """The body between the braces that follow `header` (braces balanced)."""
    start = text.index(header + " {") + len(header) + 2
    depth = 1
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index]
    raise AssertionError(f"unbalanced braces after {header}")


def _alloy_keys(body: str) -> set[str]:
    return set(re.findall(r"^\s*([a-z_]+)\s*=", body, re.M))


def test_alloy_braces_and_strings_are_balanced() -> None:
    code = re.sub(r"^\s*//.*$", "", ALLOY, flags=re.M)  # full-line comments only
    assert code.count("{") == code.count("}")
    assert all(line.count('"') % 2 == 0 for line in code.splitlines())


def test_alloy_tails_the_same_files_as_promtail() -> None:
    targets = dict(re.findall(
        r'\{"__path__" = "([^"]+)", "kind" = "([a-z_]+)"\}',
        _alloy_block('local.file_match "exporter"'),
    ))
    assert {kind: path for path, kind in targets.items()} == _promtail_paths()
    source = _alloy_block('loki.source.file "exporter"')
    assert "targets    = local.file_match.exporter.targets" in source
    assert "forward_to = [loki.process.exporter.receiver]" in source


def test_alloy_pipeline_matches_promtails() -> None:
    process = _alloy_block('loki.process "exporter"')
    assert _alloy_keys(_alloy_block("expressions =", _alloy_block("stage.json", process))) == (
        set(_promtail_stages()["json"]["expressions"]))
    assert _alloy_keys(_alloy_block("values =", _alloy_block("stage.labels", process))) == (
        STREAM_LABELS)
    metadata = _alloy_block("stage.structured_metadata", process)
    assert _alloy_keys(_alloy_block("values =", metadata)) == {"trace_id"}
    timestamp = _alloy_block("stage.timestamp", process)
    assert re.search(r'source\s*=\s*"ts"', timestamp)
    assert re.search(r'format\s*=\s*"RFC3339Nano"', timestamp)
    assert 'values = ["filename"]' in _alloy_block("stage.label_drop", process)
    assert "forward_to = [loki.write.loki.receiver]" in process


def test_alloy_writes_to_the_loki_service_and_keeps_positions_on_a_volume() -> None:
    (url,) = re.findall(r'url = "([^"]+)"', _alloy_block('loki.write "loki"'))
    assert url == PROMTAIL["clients"][0]["url"]
    command = SERVICES["alloy"]["command"]
    assert "--storage.path=/var/lib/alloy/data" in command
    assert "alloy-data:/var/lib/alloy/data" in SERVICES["alloy"]["volumes"]
    assert "/etc/alloy/config.alloy" in command


# --- grafana/ -----------------------------------------------------------------------------

DATASOURCES = {d["uid"]: d for d in _yaml("grafana/provisioning/datasources/datasources.yml")
               ["datasources"]}


def test_grafana_datasources_point_at_compose_services() -> None:
    assert set(DATASOURCES) == {"prometheus", "loki", "tempo", "alertmanager"}
    for uid, source in DATASOURCES.items():
        url = urlsplit(source["url"])
        host, port = _host_port(url.netloc)
        assert host in SERVICES, f"{uid}: {host} is not a compose service"
        assert port in _exposed_ports(host), f"{uid}: {host} does not expose {port}"
    assert DATASOURCES["alertmanager"]["jsonData"]["implementation"] == "prometheus"
    assert DATASOURCES["prometheus"]["isDefault"] is True


def _grafana_literal(value: str) -> str:
    """What Grafana makes of a provisioned value: it expands env vars, `$$` is a dollar."""
    assert not re.search(r"(?<!\$)\$\{", value), (
        f"{value!r}: a single $ would be expanded as an environment variable")
    return value.replace("$$", "$")


def test_exemplar_trace_id_links_to_the_logs_of_that_trace() -> None:
    (destination,) = [d for d in DATASOURCES["prometheus"]["jsonData"]
                      ["exemplarTraceIdDestinations"] if "url" in d]
    assert destination["name"] == "trace_id"
    link = urlsplit(_grafana_literal(destination["url"]))
    assert link.path == "/explore"
    panes = json.loads(unquote(parse_qs(link.query)["panes"][0]))
    (query,) = next(iter(panes.values()))["queries"]
    assert query["datasource"]["uid"] == "loki"
    assert query["expr"] == '{service=~".+"} |= "${__value.raw}"'


def test_loki_derived_field_finds_the_trace_id_in_a_json_line() -> None:
    (field,) = [f for f in DATASOURCES["loki"]["jsonData"]["derivedFields"]
                if f.get("datasourceUid") == "loki"]
    assert field["name"] == "trace_id" and field["datasourceUid"] == "loki"
    assert _grafana_literal(field["url"]) == '{service=~".+"} |= "${__value.raw}"'
    pattern = re.compile(field["matcherRegex"])
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    for line in (json.dumps({"level": "info", "trace_id": trace}),
                 json.dumps({"trace_id": trace}, separators=(",", ":"))):
        match = pattern.search(line)
        assert match is not None and match.group(1) == trace
    assert pattern.search('{"span_id":"00f067aa0ba902b7"}') is None


def test_dashboards_provider_reads_the_mounted_directory() -> None:
    (provider,) = _yaml("grafana/provisioning/dashboards/dashboards.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert (ROOT / "grafana" / "dashboards").is_dir()


# --- docs/stack.md: your own service in the demo's place -----------------------------------


def _documented_own_service() -> tuple[str, dict[str, Any]]:
    text = (ROOT / "docs" / "stack.md").read_text()
    section = text[text.index("## Your own service in its place"):]
    section = section[:section.index("\n## ")]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None, "docs/stack.md: no yaml block under 'Your own service'"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 4, "the service's name and three lines"
    ((name, spec),) = yaml.safe_load(block.group(1)).items()
    return name, spec


def test_the_documented_own_service_takes_the_demos_place(tmp_path: Path) -> None:
    from exporter.config import unknown_variables

    name, spec = _documented_own_service()
    env = {str(k): str(v) for k, v in spec["environment"].items()}
    assert unknown_variables(env) == []  # every EXPORTER_* variable is a setting
    assert env["EXPORTER_SERVICE_NAME"] == name
    # Its log and data folders are the volumes the sidecar reads, mounted where it writes.
    mounts = {v.split(":")[1]: v.split(":")[0] for v in spec["volumes"]}
    sidecar = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["sidecar"]["volumes"]}
    assert mounts[env["EXPORTER_LOG_DIR"]] == sidecar["/var/lib/exporter/logs"] == "app-logs"
    assert mounts[env["EXPORTER_DATA_DIR"]] == sidecar["/var/lib/exporter/data"] == "app-data"
    # In place of demo-app, the compose file still matches the Compose Specification.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    del compose["services"]["demo-app"]
    compose["services"][name] = spec
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(compose))
    result = _check_compose_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "docs" / "stack.md").read_text()
    assert f"EXPORTER_TARGETS: http://{name}:8000/metrics" in text
    assert f'targets: ["{name}:8000"]' in text and f"service: {name}" in text
