"""`exporter render [--thresholds FILE] [--out DIR] [--check]`."""

from __future__ import annotations

import sys
from pathlib import Path

from exporter.config import SettingsError
from exporter.render import differing_files, render_files, write_files
from exporter.thresholds import Thresholds, load_thresholds, parse_thresholds


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


def run_render(thresholds_path: str | None, out: str, check: bool) -> int:
    """Write (or with `check`, compare) every generated file; the exit status."""
    root = Path(out)
    if not root.is_dir():
        raise SettingsError(f"--out: {out!r} is not a directory")
    thresholds, source = _thresholds(thresholds_path, root)
    files = render_files(thresholds)
    if check:
        stale = differing_files(files, root)
        if stale:
            print(f"exporter render: {len(stale)} file(s) differ from what {source} gives "
                  "(run `exporter render` and commit the result):", file=sys.stderr)
            for relative in stale:
                print(f"  {relative}", file=sys.stderr)
            return 1
        print(f"exporter render: {len(files)} files up to date with {source}")
        return 0
    written = write_files(files, root)
    for relative in written:
        print(f"wrote {root / relative}")
    print(f"exporter render: {len(written)} of {len(files)} files changed (from {source})")
    return 0
