"""How generated files are written. YAML: block style, multi-line strings as literal blocks
(rules and embedded dashboards stay readable), keys in the order they were built, a header
first. JSON (dashboards): sorted keys, two-space indent, a final newline."""

from __future__ import annotations

import json
from typing import Any

import yaml

from exporter.render.header import HEADER


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings as literal blocks; a value used twice is written twice
    (no &id001 anchors: people and kustomize read these files)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(document: Any) -> str:
    """One YAML document, without a header."""
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True,
        default_flow_style=False,
    )


def yaml_file(*documents: Any, command: str = "exporter render") -> str:
    """A generated file: the header, then the documents separated by `---`."""
    body = "---\n".join(dump(d) for d in documents)
    return f"# {HEADER}\n# Regenerate: {command}  (reads thresholds.yaml)\n{body}"


def json_text(document: Any) -> str:
    """A generated JSON file (a dashboard): deterministic, readable in a diff."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
