"""`exporter render`: Prometheus rules, promtool tests, Grafana dashboards and docs/signals.md
from thresholds.yaml and the signal catalogue.

`render_files` returns every generated file's text by its path under the repository root;
the CLI writes them, or with `--check` lists those that differ from what is on disk.
"""

from __future__ import annotations

from pathlib import Path

from exporter.render.alerting import alerting_group
from exporter.render.dashboards import dashboards
from exporter.render.filetext import json_text, yaml_file
from exporter.render.header import HEADER
from exporter.render.promtests import alert_tests
from exporter.signals import CATALOGUE
from exporter.signals.describe import signals_page
from exporter.signals.rules import recording_groups
from exporter.thresholds import Thresholds

__all__ = ["HEADER", "differing_files", "render_files", "write_files"]


def render_files(thresholds: Thresholds) -> dict[str, str]:
    """Every generated file: relative path -> text. Same input, byte-identical output."""
    window = thresholds.render.rate_window
    recording = recording_groups(CATALOGUE, window)
    files = {
        "prometheus/rules/recording.yml": yaml_file({"groups": recording}),
        "prometheus/rules/alerts.yml": yaml_file({"groups": [alerting_group(thresholds)]}),
        "prometheus/tests/alerts_test.yml": yaml_file(alert_tests(thresholds)),
        "docs/signals.md": signals_page(CATALOGUE, window, HEADER),
    }
    for name, dashboard in dashboards(thresholds).items():
        files[f"grafana/dashboards/{name}.json"] = json_text(dashboard)
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
