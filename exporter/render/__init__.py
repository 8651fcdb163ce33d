"""`exporter render`: Prometheus rules, promtool tests, Grafana dashboards and docs/signals.md
from thresholds.yaml and the signal catalogue.

`render_files` returns every generated file's text by its path under the repository root;
the CLI writes them, or with `--check` lists those that differ from what is on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from exporter.render.alerting import alerting_group
from exporter.render.dashboards import dashboards
from exporter.render.header import HEADER
from exporter.render.promtests import alert_tests
from exporter.signals import CATALOGUE
from exporter.signals.describe import signals_page
from exporter.signals.rules import recording_groups
from exporter.thresholds import Thresholds

__all__ = ["HEADER", "differing_files", "render_files", "write_files"]


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings as literal blocks, so rules stay readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _yaml(document: dict[str, Any]) -> str:
    body = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True,
        default_flow_style=False,
    )
    return f"# {HEADER}\n# Regenerate: exporter render  (reads thresholds.yaml)\n{body}"


def render_files(thresholds: Thresholds) -> dict[str, str]:
    """Every generated file: relative path -> text. Same input, byte-identical output."""
    window = thresholds.render.rate_window
    files = {
        "prometheus/rules/recording.yml": _yaml({"groups": recording_groups(CATALOGUE, window)}),
        "prometheus/rules/alerts.yml": _yaml({"groups": [alerting_group(thresholds)]}),
        "prometheus/tests/alerts_test.yml": _yaml(alert_tests(thresholds)),
        "docs/signals.md": signals_page(CATALOGUE, window, HEADER),
    }
    for name, dashboard in dashboards(thresholds).items():
        files[f"grafana/dashboards/{name}.json"] = (
            json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )
    return files


def differing_files(files: dict[str, str], root: Path) -> list[str]:
    """The paths whose file under `root` is missing or has other content."""
    stale = []
    for relative, text in sorted(files.items()):
        path = root / relative
        try:
            same = path.read_text(encoding="utf-8") == text
        except OSError:
            same = False
        if not same:
            stale.append(relative)
    return stale


def write_files(files: dict[str, str], root: Path) -> list[str]:
    """Write the files that differ under `root`; returns their paths."""
    changed = differing_files(files, root)
    for relative in changed:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[relative], encoding="utf-8")
    return changed
