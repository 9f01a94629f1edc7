"""The layers of docs/architecture.md are a contract a tool keeps: import-linter checks .importlinter (each
folder imports only the ones below it, training and evaluation never from the live path, no import cycles),
counting imports inside functions and for type hints too."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"


def test_the_layers_contract_is_kept():
    # `lint-imports` of this interpreter's import-linter, wherever its scripts are installed; run in the
    # repository's root, it reads .importlinter there
    run = "import sys; from importlinter.cli import lint_imports_command; sys.argv[0] = 'lint-imports'; sys.exit(lint_imports_command())"
    assert CONFIG.is_file()
    res = subprocess.run([sys.executable, "-c", run, "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = res.stdout + res.stderr
    broken = re.findall(r"^(.+) BROKEN\b", report, re.MULTILINE)
    details = report[report.find("Broken contracts") :] if "Broken contracts" in report else report
    assert res.returncode == 0, f"broken contract(s) in {CONFIG.name}: {'; '.join(broken) or '(see below)'}\n{details}"
    assert " 0 broken" in report, report
