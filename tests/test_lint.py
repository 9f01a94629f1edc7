"""The code is checked by tools, not by reading: ruff (pyflakes' and pycodestyle's errors: unused or undefined
names, shadowed imports; ruff.toml) over everything, and mypy over the packages mypy.ini lists. A name that is
never defined (a type hint to a class that was renamed) or a None that reaches a str is a test failure."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff is in the dev extra: pip install -e '.[dev]'")
    res = tool("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def test_mypy_finds_nothing_in_the_checked_packages():
    pytest.importorskip("mypy", reason="mypy is in the dev extra: pip install -e '.[dev]'")
    res = tool("mypy", "--cache-dir", str(ROOT / ".mypy_cache"))  # files and settings from mypy.ini
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "Success" in res.stdout
