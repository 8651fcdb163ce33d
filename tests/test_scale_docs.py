"""docs/scale.md: its Prometheus snippets are valid added to the committed prometheus.yml, and
the sidecar's settings it names exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import Settings, env_name
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "docs" / "scale.md").read_text()
MARKER = "# prometheus.yml: "


def _snippets() -> dict[str, dict[str, Any]]:
    """The yaml blocks that open with the marker, by what follows it."""
    found = {}
    for block in re.findall(r"```yaml\n(.*?)```", TEXT, re.S):
        first = block.splitlines()[0]
        if first.startswith(MARKER):
            found[first.removeprefix(MARKER)] = yaml.safe_load(block)
    return found


SNIPPETS = _snippets()


def _merged(snippet: dict[str, Any], tmp_path: Path) -> Path:
    """The committed prometheus.yml with the snippet's keys added (global merged)."""
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    for key, value in snippet.items():
        config[key] = {**config.get(key, {}), **value} if key == "global" else value
    config["rule_files"] = [str(ROOT / "prometheus" / "rules" / "*.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_the_doc_has_a_snippet_for_mimir_and_thanos() -> None:
    assert set(SNIPPETS) == {"remote_write to Mimir", "remote_write to Thanos Receive"}
    urls = [w["url"] for s in SNIPPETS.values() for w in s["remote_write"]]
    assert urls == ["http://mimir:8080/api/v1/push",
                    "http://thanos-receive:19291/api/v1/receive"]


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_promtool_accepts_each_snippet_in_the_committed_config(tmp_path: Path, name: str) -> None:
    promtool = require_binary("promtool", "prometheus")
    result = subprocess.run([promtool, "check", "config", str(_merged(SNIPPETS[name], tmp_path))],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    for write in SNIPPETS[name]["remote_write"]:  # no secret in the file
        assert "password" not in write.get("basic_auth", {})


def test_promtool_would_refuse_a_broken_snippet(tmp_path: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    broken = yaml.safe_load(yaml.safe_dump(SNIPPETS["remote_write to Mimir"]))
    broken["remote_write"][0]["urll"] = broken["remote_write"][0].pop("url")
    result = subprocess.run([promtool, "check", "config", str(_merged(broken, tmp_path))],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "urll" in result.stdout + result.stderr


def test_the_sidecar_settings_it_names_exist() -> None:
    named = set(re.findall(r"\bEXPORTER_[A-Z_]+\b", TEXT))
    assert {"EXPORTER_PROMETHEUS_URL", "EXPORTER_PROMETHEUS_TENANT", "EXPORTER_SERVICE_SELECTOR",
            "EXPORTER_ALERTMANAGER_URL", "EXPORTER_LOKI_URL"} <= named
    assert named - {env_name(field) for field in Settings.model_fields} == set()


def test_the_loki_variables_it_names_are_those_the_config_reads() -> None:
    config = (ROOT / "loki" / "loki-scalable.yml").read_text()
    read = set(re.findall(r"\$\{(\w+)\}", config))
    assert read == set(re.findall(r"`(LOKI_\w+)`", TEXT))
