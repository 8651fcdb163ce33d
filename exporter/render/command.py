"""`exporter render [--target stack|kubernetes] [--thresholds FILE] [--out DIR] [--check]`."""

from __future__ import annotations

import sys
from pathlib import Path

from exporter.config import SettingsError
from exporter.kubernetes_options import is_absolute
from exporter.render import differing_files, render_files, write_files
from exporter.thresholds import Thresholds, load_thresholds, parse_thresholds

TARGETS = ("stack", "kubernetes")
TEMPLATES = "alertmanager/templates"


def _thresholds(path: str | None, out: Path) -> tuple[Thresholds, str]:
    if path is None:
        default = out / "thresholds.yaml"
        if not default.is_file():
            return load_thresholds(None), "the packaged thresholds.yaml"
        path = str(default)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"--thresholds: cannot read {path!r} ({exc.strerror})") from None
    return parse_thresholds(text, path), path


def _templates(root: Path) -> dict[str, str]:
    """alertmanager/templates/*.tmpl under `root`: the Kubernetes receivers use them too."""
    found = {p.name: p.read_text(encoding="utf-8")
             for p in sorted((root / TEMPLATES).glob("*.tmpl"))}
    if not found:
        raise SettingsError(
            f"--target kubernetes: no {TEMPLATES}/*.tmpl under {str(root)!r} (the notification "
            "texts the AlertmanagerConfig's receivers use); run it from the repository root")
    return found


def target_files(thresholds: Thresholds, target: str, root: Path) -> dict[str, str]:
    """The files `target` generates: relative path -> text."""
    if target == "kubernetes":
        from exporter.render.kubernetes import kubernetes_files

        return kubernetes_files(thresholds, _templates(root))
    return render_files(thresholds)


def _warn_relative_links(thresholds: Thresholds) -> None:
    url = thresholds.render.runbook_url
    if not is_absolute(url):
        print(f"exporter render: render.runbook_url is the path {url!r}: alert notifications "
              "show it as text, not a link; set it to the address where your team reads "
              "docs/runbooks.md (docs/stack.md, 'Links in alerts')", file=sys.stderr)


def run_render(thresholds_path: str | None, out: str, check: bool, target: str = "stack") -> int:
    """Write (or with `check`, compare) every file of `target`; the exit status."""
    root = Path(out)
    if not root.is_dir():
        raise SettingsError(f"--out: {out!r} is not a directory")
    if target not in TARGETS:
        raise SettingsError(f"--target: {target!r} is not one of {', '.join(TARGETS)}")
    thresholds, source = _thresholds(thresholds_path, root)
    files = target_files(thresholds, target, root)
    if check:
        stale = differing_files(files, root)
        if stale:
            print(f"exporter render: {len(stale)} file(s) differ from what {source} gives "
                  f"(run `exporter render --target {target}` and commit the result):",
                  file=sys.stderr)
            for relative in stale:
                print(f"  {relative}", file=sys.stderr)
            return 1
        print(f"exporter render: {len(files)} files up to date with {source}")
        return 0
    _warn_relative_links(thresholds)
    written = write_files(files, root)
    for relative in written:
        print(f"wrote {root / relative}")
    print(f"exporter render: {len(written)} of {len(files)} files changed (from {source})")
    return 0
