"""thresholds.yaml: the shipped values, the packaged copy, errors that name the key, and where
slow requests start."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import load_settings
from exporter.thresholds import (
    ThresholdsError,
    format_duration,
    load_thresholds,
    packaged_text,
    parse_duration,
    parse_thresholds,
    slow_request_seconds,
)

ROOT_FILE = Path(__file__).resolve().parent.parent / "thresholds.yaml"


def test_packaged_copy_is_the_repository_file() -> None:
    assert packaged_text() == ROOT_FILE.read_text(encoding="utf-8"), (
        "copy thresholds.yaml to exporter/thresholds.yaml"
    )


def test_shipped_thresholds() -> None:
    by_signal = {t.signal: t for t in load_thresholds(ROOT_FILE).items()}
    expected = {
        "cpu_usage_ratio": 0.80,
        "memory_usage_ratio": 0.85,
        "disk_usage_ratio": 0.90,
        "http_latency_p95_seconds": 0.5,
        "database_latency_seconds": 0.1,
        "redis_latency_seconds": 0.05,
        "http_error_ratio": 0.05,
        "celery_task_failure_ratio": 0.05,
    }
    assert {s: t.above for s, t in by_signal.items()} == expected
    for threshold in by_signal.values():
        assert threshold.for_seconds > 0 and threshold.severity in ("warning", "critical")


def test_every_threshold_is_commented() -> None:
    lines = ROOT_FILE.read_text().splitlines()
    for key in load_thresholds(ROOT_FILE).thresholds:
        index = lines.index(f"  {key}:")
        assert lines[index - 1].strip().startswith("#"), f"{key} has no comment above it"


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("above: 0.80", "above: 1.5", "thresholds.cpu.above"),
        ("for: 10m", "for: ten minutes", "thresholds.disk.for"),
        ("severity: critical\n    summary: Disk", "severity: page\n    summary: Disk",
         "thresholds.disk.severity"),
        ("signal: redis_latency_seconds", "signal: redis_latency",
         "thresholds.redis_latency.signal"),
        ("    summary: Memory usage above 85 %\n", "    summery: typo\n",
         "thresholds.memory.summery"),
        ("alert: HighRedisLatency", "alert: HighApiLatency", "thresholds.redis_latency.alert"),
        ("version: 1", "version: 2", "version"),
        ("for: 5m\n    severity: warning\n    summary: CPU",
         "for: -300\n    severity: warning\n    summary: CPU", "thresholds.cpu.for"),
        ("for: 5m\n    severity: warning\n    summary: CPU",
         "for: 99999999999999999999h\n    severity: warning\n    summary: CPU",
         "thresholds.cpu.for"),
        ("for: 5m\n    severity: warning\n    summary: CPU",
         "for: 691200\n    severity: warning\n    summary: CPU", "thresholds.cpu.for"),
        ("above: 0.1", "above: .nan", "thresholds.db_latency.above"),
        ("above: 0.1", "above: .inf", "thresholds.db_latency.above"),
        ("above: 0.80", "above: true", "thresholds.cpu.above"),
        ("above: 0.1", "above: '0.1'", "thresholds.db_latency.above"),
    ],
)
def test_errors_name_the_key(old: str, new: str, named: str) -> None:
    text = ROOT_FILE.read_text()
    assert old in text
    with pytest.raises(ThresholdsError) as caught:
        parse_thresholds(text.replace(old, new, 1), "my.yaml")
    assert str(caught.value).startswith("my.yaml: ")
    assert named in str(caught.value)


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(ThresholdsError, match=r"x.yaml: not valid YAML at line 2"):
        parse_thresholds("version: 1\n\tthresholds: x\n", "x.yaml")


def test_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ThresholdsError, match="EXPORTER_THRESHOLDS_FILE"):
        load_thresholds(tmp_path / "nope.yaml")


def test_durations_round_trip() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("0s") == 0
    assert format_duration(300) == "5m"
    assert format_duration(5400) == "1h30m"
    with pytest.raises(ValueError):
        parse_duration("5 m")


def test_for_may_be_zero_or_up_to_a_week() -> None:
    text = ROOT_FILE.read_text().replace("for: 5m", "for: 0", 1).replace("for: 10m", "for: 168h", 1)
    by_key = {t.key: t for t in parse_thresholds(text).items()}
    assert (by_key["cpu"].for_seconds, by_key["disk"].for_seconds) == (0.0, 7 * 86400.0)
    assert parse_thresholds(ROOT_FILE.read_text().replace("above: 0.1", "above: 1", 1))


def test_slow_requests_follow_the_api_latency_threshold_unless_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().slow_request_seconds is None
    assert slow_request_seconds(load_settings()) == 0.5  # api_latency.above
    thresholds = tmp_path / "thresholds.yaml"
    shipped = ROOT_FILE.read_text()
    assert "above: 0.5\n" in shipped
    thresholds.write_text(shipped.replace("above: 0.5\n", "above: 0.3\n"))
    monkeypatch.setenv("EXPORTER_THRESHOLDS_FILE", str(thresholds))
    assert slow_request_seconds(load_settings()) == 0.3
    monkeypatch.setenv("EXPORTER_SLOW_REQUEST_SECONDS", "")  # empty: from thresholds too
    assert slow_request_seconds(load_settings()) == 0.3
    monkeypatch.setenv("EXPORTER_SLOW_REQUEST_SECONDS", "0.2")
    assert slow_request_seconds(load_settings()) == 0.2


def test_slow_requests_read_the_thresholds_in_use() -> None:
    shipped = ROOT_FILE.read_text()
    custom = parse_thresholds(shipped.replace("above: 0.5\n", "above: 0.75\n"))
    assert slow_request_seconds(load_settings(), custom) == 0.75
    without = parse_thresholds(shipped.replace("http_latency_p95_seconds", "cpu_usage_ratio")
                               .replace("above: 0.5\n", "above: 0.9\n"))
    assert slow_request_seconds(load_settings(), without) == 0.5  # the fallback
    assert slow_request_seconds(load_settings(slow_request_seconds=2), custom) == 2.0
