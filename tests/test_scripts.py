"""The scripts in `benches/` and `examples/` that take options: `--help` prints them and exits 0
(argparse formats help strings with `%`, so a stray percent sign breaks it only when asked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(
    p for folder in ("benches", "examples") for p in (ROOT / folder).glob("*.py") if "argparse" in p.read_text()
)


def test_scripts_were_found() -> None:
    assert {p.name for p in SCRIPTS} >= {"katz_table.py", "quickstart.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_help(script: Path) -> None:
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
