"""The code is checked by tools, not by reading: ruff (pyflakes' and pycodestyle's errors: unused or undefined
names, shadowed imports; and the formatter's layout; ruff.toml) over everything, and mypy over all of rtseg (mypy.ini). A name that is
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


def test_the_code_is_laid_out_as_ruff_format_lays_it_out():
    # one layout, the tool's: a diff shows what changed, not how someone wraps lines (`ruff format .` fixes it)
    pytest.importorskip("ruff", reason="ruff is in the dev extra: pip install -e '.[dev]'")
    res = tool("ruff", "format", "--check", "--no-cache", ".")
    assert res.returncode == 0, "run `ruff format .`: " + res.stdout[-4000:] + res.stderr[-2000:]


def test_mypy_finds_nothing_in_rtseg():
    pytest.importorskip("mypy", reason="mypy is in the dev extra: pip install -e '.[dev]'")
    res = tool("mypy", "--cache-dir", str(ROOT / ".mypy_cache"))  # files and settings from mypy.ini
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "Success" in res.stdout


def test_no_class_outgrows_a_reading():
    # a class a newcomer reads in one sitting: past this, a job of its own is hiding in it (the pipeline's
    # capture, delivery and run control, a group's lanes, an engine's loading were such jobs)
    import ast

    def docstring_lines(node) -> int:  # a docstring with its examples is reading, not code: it does not count
        body = getattr(node, "body", [])
        doc = (
            body[0]
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)
            else None
        )
        own = doc.end_lineno - doc.lineno + 1 if doc else 0
        return own + sum(docstring_lines(n) for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))

    limit, big = 160, []
    for path in sorted((ROOT / "rtseg").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                lines = node.end_lineno - node.lineno + 1 - docstring_lines(node)
                if lines > limit:
                    big.append(f"{path.relative_to(ROOT)}:{node.name} ({lines} lines without docstrings)")
    assert not big, f"classes over {limit} lines: {', '.join(big)}"
