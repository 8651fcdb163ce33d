"""The OTLP path of the compose stack: apps using FastAPI's own OpenTelemetry send to Alloy,
which forwards traces to Tempo, metrics to Prometheus and logs to Loki; Grafana links the three.

Alloy, Tempo, Loki and Grafana cannot run in CI: their files are checked for the structure and
the argument names their reference documentation gives, and against each other. Prometheus
runs: the compose flags take a remote write as Alloy sends it, exemplar included.
"""

from __future__ import annotations

import re
import struct
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.alloy_syntax import Body, Component, components, list_items, references, string_value
from tests.test_stack_config import (
    ROOT,
    SERVICES,
    STREAM_LABELS,
    _exposed_ports,
    _host_port,
    _yaml,
)

ALLOY_TEXT = (ROOT / "alloy" / "config.alloy").read_text()
ALLOY = {(c.kind, c.label): c for c in components(ALLOY_TEXT)}
TEMPO = _yaml("tempo/tempo.yaml")
LOKI = _yaml("loki/loki.yml")
DATASOURCES: dict[str, dict[str, Any]] = {
    d["uid"]: d for d in _yaml("grafana/provisioning/datasources/datasources.yml")["datasources"]}
DOCS = (ROOT / "docs" / "stack.md").read_text()

# --- Alloy's reference, as documented (grafana/alloy docs/sources/reference/components) ------
# `None` for a block: present in the reference, its content not checked here.
Schema = dict[str, Any]
_OUTPUT: Schema = {"args": {"metrics", "logs", "traces"}, "blocks": {}}
_TLS_CLIENT: Schema = {"args": {
    "insecure", "insecure_skip_verify", "server_name", "ca_file", "ca_pem", "cert_file",
    "cert_pem", "key_file", "key_pem", "min_version", "max_version", "reload_interval",
    "cipher_suites", "include_system_ca_certs_pool"}, "blocks": {"tpm": None}}
_STATEMENTS: Schema = {"args": {"context", "statements", "conditions", "error_mode"},
                       "blocks": {}}
_QUEUE_AND_RETRY = {"sending_queue": None, "retry_on_failure": None, "debug_metrics": None}
ALLOY_REFERENCE: dict[str, Schema] = {
    "otelcol.receiver.otlp": {"args": set(), "blocks": {
        "grpc": {"args": {"auth", "endpoint", "include_metadata", "max_concurrent_streams",
                          "max_recv_msg_size", "read_buffer_size", "transport",
                          "write_buffer_size"},
                 "blocks": {"tls": None, "keepalive": None}},
        "http": {"args": {"auth", "compression_algorithms", "endpoint", "idle_timeout",
                          "include_metadata", "keep_alives_enabled", "logs_url_path",
                          "max_request_body_size", "metrics_url_path", "read_header_timeout",
                          "read_timeout", "traces_url_path", "write_timeout"},
                 "blocks": {"tls": None, "cors": None}},
        "output": _OUTPUT, "debug_metrics": None}},
    "otelcol.processor.transform": {"args": {"error_mode"}, "blocks": {
        "trace_statements": _STATEMENTS, "metric_statements": _STATEMENTS,
        "log_statements": _STATEMENTS, "output": _OUTPUT, "debug_metrics": None,
        "statements": {"args": {"log", "metric", "trace"}, "blocks": {}}}},
    "otelcol.processor.batch": {"args": {
        "timeout", "send_batch_size", "send_batch_max_size", "metadata_keys",
        "metadata_cardinality_limit"}, "blocks": {"output": _OUTPUT, "debug_metrics": None}},
    "otelcol.exporter.prometheus": {"args": {
        "forward_to", "add_metric_suffixes", "convert_classic_histograms_to_nhcb",
        "start_timestamp_zero_ingestion", "gc_frequency", "honor_metadata",
        "include_scope_info", "include_scope_labels", "include_target_info",
        "keep_identifying_resource_attributes", "resource_to_telemetry_conversion"},
        "blocks": {"debug_metrics": None}},
    "prometheus.remote_write": {"args": {"external_labels"}, "blocks": {
        "endpoint": {"args": {
            "url", "bearer_token_file", "bearer_token", "enable_http2", "follow_redirects",
            "http_headers", "headers", "name", "no_proxy", "protobuf_message",
            "proxy_connect_header", "proxy_from_environment", "proxy_url", "remote_timeout",
            "round_robin_dns", "send_exemplars", "send_native_histograms"},
            "blocks": {"authorization": None, "azuread": None, "basic_auth": None,
                       "google_iam": None, "metadata_config": None, "oauth2": None,
                       "queue_config": None, "sigv4": None, "tls_config": None,
                       "write_relabel_config": None}},
        "wal": None}},
    "otelcol.exporter.otlphttp": {"args": {
        "metrics_endpoint", "logs_endpoint", "traces_endpoint", "encoding"}, "blocks": {
        "client": {"args": {
            "endpoint", "proxy_url", "read_buffer_size", "write_buffer_size", "timeout",
            "headers", "compression", "max_idle_conns", "max_idle_conns_per_host",
            "max_conns_per_host", "idle_conn_timeout", "disable_keep_alives",
            "http2_read_idle_timeout", "http2_ping_timeout", "auth"},
            "blocks": {"tls": _TLS_CLIENT, "cookies": None}},
        **_QUEUE_AND_RETRY}},
    "otelcol.exporter.otlp": {"args": {"timeout"}, "blocks": {
        "client": {"args": {
            "endpoint", "auth", "authority", "balancer_name", "compression", "headers",
            "read_buffer_size", "wait_for_ready", "write_buffer_size"},
            "blocks": {"tls": _TLS_CLIENT, "keepalive": None}},
        **_QUEUE_AND_RETRY}},
}
# What each family exports for others to reference.
EXPORTS = {"otelcol.": "input", "prometheus.remote_write": "receiver", "loki.": "receiver",
           "local.file_match": "targets"}
OTLP_COMPONENTS = set(ALLOY_REFERENCE)


def _problems(schema: Schema, body: Body, where: str) -> list[str]:
    found = [f"{where}: unknown argument {name!r}"
             for name in body.arguments if name not in schema["args"]]
    for name, bodies in body.blocks.items():
        if name not in schema["blocks"]:
            found.append(f"{where}: unknown block {name!r}")
        elif schema["blocks"][name] is not None:
            for inner in bodies:
                found += _problems(schema["blocks"][name], inner, f"{where} > {name}")
    return found


def _one(kind: str) -> Component:
    (component,) = [c for c in ALLOY.values() if c.kind == kind]
    return component


def _block(body: Body, name: str) -> Body:
    (inner,) = body.blocks[name]
    return inner


def _endpoint(component: Component, block: str) -> str:
    return string_value(_block(component.body, block).arguments["endpoint"])


# --- alloy/config.alloy -------------------------------------------------------------------


def test_the_alloy_parser_refuses_what_alloy_would() -> None:
    with pytest.raises(ValueError, match="unbalanced"):
        components('otelcol.processor.batch "a" {\n  output {\n}\n')
    with pytest.raises(ValueError, match="unterminated"):
        components('loki.write "a" {\n  endpoint {\n    url = "http://x\n  }\n}\n')
    with pytest.raises(ValueError, match="not a component"):
        components('grpc {\n}\n')
    (component,) = components('a.b "c" {\n  // x = {\n  d = "}"\n  e { f = [1, 2] }\n}\n')
    assert component.body.arguments == {"d": '"}"'}
    assert list(component.body.blocks) == ["e"]


def test_alloy_components_use_only_documented_arguments_and_blocks() -> None:
    problems = []
    for (kind, label), component in ALLOY.items():
        if kind in ALLOY_REFERENCE:
            problems += _problems(ALLOY_REFERENCE[kind], component.body, f'{kind} "{label}"')
    assert problems == []
    assert {kind for kind, _ in ALLOY} >= OTLP_COMPONENTS


def test_the_reference_check_catches_a_misspelt_argument() -> None:
    broken = ALLOY_TEXT.replace("send_exemplars =", "send_exemplar =")
    (remote_write,) = [c for c in components(broken) if c.kind == "prometheus.remote_write"]
    assert _problems(ALLOY_REFERENCE["prometheus.remote_write"], remote_write.body, "rw") == [
        "rw > endpoint: unknown argument 'send_exemplar'"]


def test_every_reference_names_a_component_the_config_defines_and_its_export() -> None:
    referred = references(ALLOY_TEXT)
    for kind, label, export in referred:
        assert (kind, label) in ALLOY, f"{kind}.{label} is referenced but not defined"
        expected = next(v for prefix, v in EXPORTS.items() if kind.startswith(prefix))
        assert export == expected, f"{kind}.{label}.{export}: it exports {expected}"
    # Every component but the two that start a pipeline (the file tailer, the OTLP receiver)
    # is referred to by another: nothing is defined and left unused.
    used = {(kind, label) for kind, label, _ in referred}
    assert set(ALLOY) - used == {("loki.source.file", "exporter"),
                                 ("otelcol.receiver.otlp", "apps")}


def test_each_otlp_signal_reaches_its_store() -> None:
    """Follow output/forward_to from the receiver: traces end at Tempo, metrics at Prometheus'
    remote write, logs at Loki's OTLP endpoint, each through the batch processor."""

    def targets(component: Component, signal: str) -> list[tuple[str, str]]:
        if "output" in component.body.blocks:
            values = _block(component.body, "output").arguments.get(signal, "[]")
        else:
            values = component.body.arguments.get("forward_to", "[]")
        return [tuple(item.rsplit(".", 2)[:2]) for item in list_items(values)]  # type: ignore[misc]

    def ends(signal: str) -> set[tuple[str, ...]]:
        paths, done = [[("otelcol.receiver.otlp", "apps")]], set()
        while paths:
            path = paths.pop()
            nexts = targets(ALLOY[path[-1]], signal)
            if not nexts:
                done.add(tuple(kind for kind, _ in path))
            paths += [[*path, step] for step in nexts]
        return done

    assert ends("traces") == {("otelcol.receiver.otlp", "otelcol.processor.batch",
                               "otelcol.exporter.otlp")}
    for signal, exporter in (("metrics", ("otelcol.exporter.prometheus",
                                          "prometheus.remote_write")),
                             ("logs", ("otelcol.exporter.otlphttp",))):
        assert ends(signal) == {("otelcol.receiver.otlp", "otelcol.processor.transform",
                                 "otelcol.processor.batch", *exporter)}


def test_alloy_listens_for_otlp_where_compose_exposes_it() -> None:
    receiver = _one("otelcol.receiver.otlp")
    grpc, http = _endpoint(receiver, "grpc"), _endpoint(receiver, "http")
    assert (grpc, http) == ("0.0.0.0:4317", "0.0.0.0:4318")  # the OTLP ports, all interfaces
    for endpoint in (grpc, http):
        port = _host_port(endpoint)[1]
        assert port in _exposed_ports("alloy")
        assert f"${{BIND_ADDRESS:-127.0.0.1}}:{port}:{port}" in SERVICES["alloy"]["ports"]


def test_traces_go_to_tempos_otlp_grpc_receiver() -> None:
    host, port = _host_port(_endpoint(_one("otelcol.exporter.otlp"), "client"))
    assert host == "tempo" and port in _exposed_ports("tempo")
    grpc = TEMPO["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert grpc == f"0.0.0.0:{port}"  # since Tempo 2.7 an unset endpoint means localhost
    tls = _block(_block(_one("otelcol.exporter.otlp").body, "client"), "tls")
    assert tls.arguments == {"insecure": "true"}  # Tempo's receiver has no TLS here


def test_metrics_are_remote_written_to_prometheus_with_exemplars() -> None:
    endpoint = _block(_one("prometheus.remote_write").body, "endpoint")
    url = urlsplit(string_value(endpoint.arguments["url"]))
    host, port = _host_port(url.netloc)
    assert (host, url.path) == ("prometheus", "/api/v1/write")
    assert port in _exposed_ports("prometheus")
    assert endpoint.arguments["send_exemplars"] == "true"
    command = SERVICES["prometheus"]["command"]
    assert "--web.enable-remote-write-receiver" in command
    assert "--enable-feature=exemplar-storage" in command


def test_logs_go_to_lokis_otlp_endpoint() -> None:
    exporter = _one("otelcol.exporter.otlphttp")
    url = urlsplit(_endpoint(exporter, "client"))
    host, port = _host_port(url.netloc)
    # The exporter appends /v1/logs: Loki takes OTLP logs at /otlp/v1/logs.
    assert (url.scheme, host, url.path) == ("http", "loki", "/otlp")
    assert port in _exposed_ports("loki") and port == LOKI["server"]["http_listen_port"]
    assert "logs_endpoint" not in exporter.body.arguments
    assert LOKI["limits_config"]["allow_structured_metadata"] is True  # Loki refuses OTLP else


def _statements(context_block: str) -> list[str]:
    transform = _one("otelcol.processor.transform")
    (block,) = transform.body.blocks[context_block]
    return [item.strip("`") for item in list_items(block.arguments["statements"])]


def test_otlp_series_and_streams_carry_the_service_label_the_kit_selects_by() -> None:
    assert _statements("metric_statements") == [
        'set(attributes["service"], resource.attributes["service.name"])']
    logs = _statements("log_statements")
    assert logs[0] == 'set(attributes["service"], attributes["service.name"])'
    assert {re.match(r'set\(attributes\["(\w+)"\]', s).group(1) for s in logs} == {  # type: ignore[union-attr]
        "service", "env"}
    # Loki indexes those resource attributes as labels: the dashboards' {service="..."} and
    # {env="..."} then find OTLP streams, and they stay within the kit's label set.
    (indexed,) = LOKI["limits_config"]["otlp_config"]["resource_attributes"]["attributes_config"]
    assert indexed == {"action": "index_label", "attributes": ["service", "env"]}
    assert set(indexed["attributes"]) <= STREAM_LABELS
    transform = _one("otelcol.processor.transform")
    assert transform.body.arguments["error_mode"] == '"ignore"'  # a bad record is not a lost batch


# --- tempo/tempo.yaml ---------------------------------------------------------------------


def test_tempo_config_and_compose_agree() -> None:
    spec = SERVICES["tempo"]
    assert spec["image"].startswith("grafana/tempo:2.")  # 3.x changes the config's shape
    assert spec["command"] == ["-config.file=/etc/tempo/tempo.yaml"]
    assert "./tempo:/etc/tempo:ro" in spec["volumes"]
    assert set(TEMPO) == {"server", "distributor", "compactor", "storage", "usage_report"}
    http_port = TEMPO["server"]["http_listen_port"]
    assert http_port == 3200 and http_port in _exposed_ports("tempo")
    assert f"http://127.0.0.1:{http_port}/ready" in spec["healthcheck"]["test"]
    protocols = TEMPO["distributor"]["receivers"]["otlp"]["protocols"]
    assert {name: _host_port(p["endpoint"]) for name, p in protocols.items()} == {
        "grpc": ("0.0.0.0", 4317), "http": ("0.0.0.0", 4318)}
    assert {4317, 4318} <= _exposed_ports("tempo")
    assert "ports" not in spec  # Grafana and Alloy reach it inside the compose network


def test_tempo_keeps_traces_30_days_on_its_volume() -> None:
    trace = TEMPO["storage"]["trace"]
    assert trace["backend"] == "local"
    mounted = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["tempo"]["volumes"]}
    assert mounted["/var/tempo"] == "tempo-data"
    for path in (trace["wal"]["path"], trace["local"]["path"]):
        assert Path(path).is_relative_to("/var/tempo")
    assert TEMPO["compactor"]["compaction"]["block_retention"] == "720h"
    assert LOKI["limits_config"]["retention_period"] == "720h"
    assert TEMPO["usage_report"]["reporting_enabled"] is False


def test_prometheus_scrapes_tempo() -> None:
    jobs = {job["job_name"]: job for job in _yaml("prometheus/prometheus.yml")["scrape_configs"]}
    (group,) = jobs["tempo"]["static_configs"]
    assert group["targets"] == [f"tempo:{TEMPO['server']['http_listen_port']}"]


# --- grafana datasources ------------------------------------------------------------------


def _uids_referenced(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["datasourceUid"]] if "datasourceUid" in value else []
        return found + [uid for inner in value.values() for uid in _uids_referenced(inner)]
    if isinstance(value, list):
        return [uid for inner in value for uid in _uids_referenced(inner)]
    return []


def test_every_datasource_uid_referenced_exists() -> None:
    referenced = {uid for source in DATASOURCES.values()
                  for uid in _uids_referenced(source.get("jsonData", {}))}
    assert referenced == {"loki", "tempo"}
    assert referenced <= set(DATASOURCES)


def test_tempo_datasource_reads_the_tempo_service() -> None:
    tempo = DATASOURCES["tempo"]
    assert tempo["type"] == "tempo" and tempo["access"] == "proxy"
    url = urlsplit(tempo["url"])
    assert _host_port(url.netloc) == ("tempo", TEMPO["server"]["http_listen_port"])


def test_exemplars_link_to_the_trace_in_tempo_and_to_its_logs() -> None:
    destinations = DATASOURCES["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    # The exemplar label: the kit's histograms and otelcol.exporter.prometheus both name it so.
    assert {d["name"] for d in destinations} == {"trace_id"}
    (internal,) = [d for d in destinations if "datasourceUid" in d]
    assert internal["datasourceUid"] == "tempo" and "url" not in internal
    (external,) = [d for d in destinations if "datasourceUid" not in d]
    assert external["url"].startswith("/explore?")


def test_a_span_links_to_the_lines_of_its_trace_by_structured_metadata() -> None:
    to_logs = DATASOURCES["tempo"]["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == "loki"
    # service.name (the span's resource) maps to the stream label every path sets.
    assert to_logs["tags"] == [{"key": "service.name", "value": "service"}]
    assert "service" in STREAM_LABELS
    assert to_logs["customQuery"] is True
    # Provisioning files expand $VAR: `$$` is a literal dollar.
    assert to_logs["query"].replace("$$", "$") == '{${__tags}} | trace_id="${__trace.traceId}"'
    assert not re.search(r"(?<!\$)\$\{", to_logs["query"])
    # trace_id is structured metadata on every shipping path: the shippers' stages here, and
    # Loki's OTLP endpoint for OTLP logs.
    assert "trace_id" in ALLOY_TEXT[ALLOY_TEXT.index("stage.structured_metadata"):]
    assert to_logs["spanStartTimeShift"].startswith("-")


def test_log_lines_link_to_their_trace_from_the_json_line_and_from_metadata() -> None:
    fields = DATASOURCES["loki"]["jsonData"]["derivedFields"]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for field in fields:
        by_name.setdefault(field["name"], []).append(field)
    # Grafana takes a field's value with the first matcher of its name: one matcher per name.
    for name, group in by_name.items():
        assert len({(f.get("matcherType", "regex"), f["matcherRegex"]) for f in group}) == 1, name
    in_line = by_name["trace_id"]
    assert {f["datasourceUid"] for f in in_line} == {"tempo", "loki"}
    trace_link = next(f for f in in_line if f["datasourceUid"] == "tempo")
    assert trace_link["url"].replace("$$", "$") == "${__value.raw}"
    pattern = re.compile(in_line[0]["matcherRegex"])
    match = pattern.search('{"level":"info","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}')
    assert match is not None and match.group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"
    (metadata,) = by_name["trace"]
    assert metadata["matcherType"] == "label" and metadata["matcherRegex"] == "trace_id"
    assert metadata["datasourceUid"] == "tempo"
    assert metadata["url"].replace("$$", "$") == "${__value.raw}"


def test_grafana_waits_for_tempo() -> None:
    assert SERVICES["grafana"]["depends_on"]["tempo"] == {"condition": "service_healthy"}
    assert SERVICES["alloy"]["depends_on"]["tempo"] == {"condition": "service_started"}


# --- docs/stack.md: "With FastAPI's built-in OpenTelemetry" -------------------------------


def _documented_environment() -> dict[str, str]:
    section = DOCS[DOCS.index("## With FastAPI's built-in OpenTelemetry"):]
    section = section[:section.index("\n## ", 4)]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None, "no yaml block in the OpenTelemetry section"
    (service,) = yaml.safe_load(block.group(1))["services"].values()
    return {str(k): str(v) for k, v in service["environment"].items()}


def test_the_documented_environment_sends_to_alloy_as_fastapi_expects() -> None:
    env = _documented_environment()
    assert env["FASTAPI_OTEL_AUTO_CONFIGURE"] == "true"
    assert env["OTEL_SERVICE_NAME"]
    # FastAPI's automatic set-up speaks OTLP over HTTP/protobuf only.
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    url = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    host, port = _host_port(url.netloc)
    assert (url.scheme, host, url.path) == ("http", "alloy", "")
    assert f"0.0.0.0:{port}" == _endpoint(_one("otelcol.receiver.otlp"), "http")
    # Prometheus takes cumulative series only: the SDK's default, which must not be changed.
    assert "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE" not in env


def test_fastapi_accepts_the_documented_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # FastAPI's own reading of these variables (fastapi.telemetry): each signal goes to the
    # Alloy receiver's path for it, with no error about the protocol.
    runtime = pytest.importorskip("fastapi.telemetry._runtime")
    export_endpoint = getattr(runtime, "_export_endpoint", None)
    if export_endpoint is None:
        pytest.skip("this FastAPI has no fastapi.telemetry._runtime._export_endpoint")
    for name, value in _documented_environment().items():
        monkeypatch.setenv(name, value)
    receiver = _block(_one("otelcol.receiver.otlp").body, "http").arguments
    for signal in ("TRACES", "METRICS", "LOGS"):
        path = string_value(receiver.get(f"{signal.lower()}_url_path", f'"/v1/{signal.lower()}"'))
        assert export_endpoint(signal) == f"http://alloy:4318{path}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(Exception, match="http/protobuf"):
        export_endpoint("TRACES")


def test_docs_name_every_port_of_the_otlp_path() -> None:
    for text in ("`tempo`", "grafana/tempo:", "4317", "4318", "3200",
                 "--web.enable-remote-write-receiver", "/otlp"):
        assert text in DOCS, text
    assert SERVICES["tempo"]["image"] in DOCS


# --- a real Prometheus with the compose flags takes what Alloy remote-writes ---------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _labels(labels: dict[str, str]) -> bytes:
    return b"".join(_field(1, _field(1, k.encode()) + _field(2, v.encode()))
                    for k, v in sorted(labels.items()))


def _write_request(labels: dict[str, str], value: float, millis: int,
                   exemplar: dict[str, str]) -> bytes:
    """prometheus.WriteRequest (remote write 1.0, what prometheus.remote_write sends by
    default): one series, one sample, one exemplar."""
    sample = _varint(1 << 3 | 1) + struct.pack("<d", value) + _varint(2 << 3) + _varint(millis)
    example = (_labels(exemplar) + _varint(2 << 3 | 1) + struct.pack("<d", value)
               + _varint(3 << 3) + _varint(millis))
    return _field(1, _labels(labels) + _field(2, sample) + _field(3, example))


def _snappy(data: bytes) -> bytes:
    """Snappy block format with literals only: valid, uncompressed."""
    out = bytearray(_varint(len(data)))
    for start in range(0, len(data), 65536):
        chunk = data[start:start + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + struct.pack("<H", n)
        out += chunk
    return bytes(out)


def test_prometheus_with_the_compose_flags_takes_remote_writes_and_exemplars(
    tmp_path: Path,
) -> None:
    from tests.prometheus_stack import query, run_prometheus

    # The compose file's flags that this Prometheus (Debian's 2.x) knows; the pinned v2.55.1
    # has them too.
    wanted = ("--web.enable-remote-write-receiver", "--enable-feature=exemplar-storage")
    flags = [flag for flag in SERVICES["prometheus"]["command"] if flag in wanted]
    assert sorted(flags) == sorted(wanted)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    series = {"__name__": "http_server_request_duration_seconds_count", "job": "shop",
              "service": "shop", "http_route": "/items/{item_id}"}
    millis = int(time.time() * 1000)
    body = _snappy(_write_request(series, 42.0, millis, {"trace_id": trace}))
    with run_prometheus(tmp_path, {"global": {"scrape_interval": "15s"}},
                        extra_flags=flags) as url:
        reply = httpx.post(f"{url}/api/v1/write", content=body, timeout=10.0, headers={
            "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0"})
        assert reply.status_code == 204, reply.text
        error, result = query(url, 'http_server_request_duration_seconds_count{service="shop"}')
        assert error is None and [r["value"][1] for r in result] == ["42"]
        exemplars = httpx.get(f"{url}/api/v1/query_exemplars", timeout=10.0, params={
            "query": 'http_server_request_duration_seconds_count{service="shop"}',
            "start": millis / 1000 - 60, "end": millis / 1000 + 60}).json()["data"]
        assert [e["labels"] for group in exemplars for e in group["exemplars"]] == [
            {"trace_id": trace}]
