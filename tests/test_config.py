"""Settings: defaults, environment parsing, and one-line errors that name the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from exporter.config import DEFAULT_BUCKETS, SettingsError, load_settings


def test_defaults_bind_loopback_on_a_port_clear_of_the_stack() -> None:
    settings = load_settings()
    assert settings.host == "127.0.0.1"
    assert settings.port not in {9090, 9093, 9100, 3000, 3100}
    assert "/metrics" in settings.excluded_paths
    assert 0.5 in settings.histogram_buckets


def test_default_buckets_are_dense_around_the_500ms_threshold() -> None:
    near = [b for b in DEFAULT_BUCKETS if 0.3 <= b <= 0.75]
    assert len(near) >= 5
    assert list(DEFAULT_BUCKETS) == sorted(DEFAULT_BUCKETS)


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORTER_SERVICE_NAME", "checkout")
    monkeypatch.setenv("EXPORTER_PORT", "9999")
    monkeypatch.setenv("EXPORTER_EXCLUDED_PATHS", "/metrics, /internal/ping")
    monkeypatch.setenv("EXPORTER_HISTOGRAM_BUCKETS", "[0.1, 0.5, 1]")
    settings = load_settings()
    assert settings.service_name == "checkout"
    assert settings.port == 9999
    assert settings.excluded_paths == ["/metrics", "/internal/ping"]
    assert settings.histogram_buckets == [0.1, 0.5, 1.0]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("EXPORTER_PORT", "abc", "allowed: 1 to 65535"),
        ("EXPORTER_PORT", "70000", "allowed: 1 to 65535"),
        ("EXPORTER_LOG_LEVEL", "loud", "'debug', 'info', 'warning', 'error' or 'critical'"),
        ("EXPORTER_HISTOGRAM_BUCKETS", "0.5,0.1", "strictly increasing"),
        ("EXPORTER_HISTOGRAM_BUCKETS", "[0.1,", "not a valid JSON list"),
        ("EXPORTER_EXCLUDED_PATHS", "metrics", "must start with '/'"),
        ("EXPORTER_SERVICE_NAME", "my service", "allowed: 1-64 letters"),
        ("EXPORTER_WORKERS", "0", "allowed: 1 to 64"),
        ("EXPORTER_HISTOGRAM_BUCKETS", "0.1,inf", "must be finite numbers"),
        ("EXPORTER_HISTOGRAM_BUCKETS", "0.1,nan", "must be finite numbers"),
        ("EXPORTER_HISTOGRAM_BUCKETS", "foo", "e.g. 0.1,0.5,1"),
        ("EXPORTER_METRICS_PATH", "metrics", "a path such as /metrics"),
        ("EXPORTER_DISK_PATHS", "/,/no/such/mount", "'/no/such/mount' is not an existing"),
        ("EXPORTER_DISK_PATHS", "", "needs at least one directory"),
        # The shipper labels streams as Promtail and Alloy do: these four are its own.
        ("EXPORTER_LOKI_LABELS", "kind=batch", "label 'kind' is set by the exporter itself"),
        ("EXPORTER_LOKI_LABELS", "level=x", "label 'level' is set by the exporter itself"),
        ("EXPORTER_LOKI_LABELS", "__name__=x", "not a valid Loki label name"),
    ],
)
def test_bad_value_names_the_variable_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(variable + ":")
    assert expected in message
    assert "\n" not in message


def test_no_message_shows_a_raw_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORTER_METRICS_PATH", "metrics")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "pattern" not in str(caught.value) and "^/" not in str(caught.value)


def test_the_log_level_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORTER_LOG_LEVEL", "DEBUG")
    assert load_settings().log_level == "debug"


def test_a_secret_value_is_never_echoed_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORTER_PORT", "x")
    with pytest.raises(SettingsError) as caught:
        load_settings(api_token=12345)  # not a string: rejected, but not printed
    assert "EXPORTER_API_TOKEN" in str(caught.value)
    assert "12345" not in str(caught.value)


def test_cli_stops_with_one_line_naming_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "serve", "--port", "notaport"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("exporter: error: --port (EXPORTER_PORT):")
    assert "notaport" in lines[0]
    assert "Traceback" not in result.stderr


def test_an_empty_api_token_means_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORTER_API_TOKEN", "")
    assert load_settings().api_token is None
    monkeypatch.setenv("EXPORTER_API_TOKEN", "s3cret")
    token = load_settings().api_token
    assert token is not None and token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(load_settings())


def test_a_history_ring_too_long_is_refused_naming_both_variables() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(history_interval_seconds=0.05, history_window_seconds=604800)
    message = str(caught.value)
    assert message.startswith("EXPORTER_HISTORY_WINDOW_SECONDS: ")
    assert "EXPORTER_HISTORY_INTERVAL_SECONDS" in message and "12096001 samples" in message
    assert load_settings(history_interval_seconds=7, history_window_seconds=604800)
    assert load_settings(history_interval_seconds=0.05, history_window_seconds=3600)
