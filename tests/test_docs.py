"""The docs agree with the code."""

from __future__ import annotations

from pathlib import Path

from exporter.config import Settings, env_name

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [env_name(name) for name in Settings.model_fields if env_name(name) not in text]
    assert missing == [], f"add these to docs/configuration.md: {missing}"


def test_readme_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    fence = lines.index("```sh")
    assert lines[fence + 1].startswith("make run")
    assert lines[fence + 2].startswith("make test")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci


def test_every_bench_script_has_its_row_in_the_bench_readme() -> None:
    # apps.py and variants.py are what the scripts serve, not scripts of their own.
    text = (ROOT / "bench" / "README.md").read_text()
    scripts = sorted(p.name for p in (ROOT / "bench").glob("*.py")
                     if p.name not in ("apps.py", "variants.py"))
    missing = [name for name in scripts if f"\n| `{name}` |" not in text]
    assert len(scripts) >= 13 and missing == [], f"add a row to bench/README.md for {missing}"
