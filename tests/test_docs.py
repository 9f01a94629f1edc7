"""The README is a newcomer's ten-minute tour and the site under docs/ holds the numbers: both stay that way.

README.md: at most 250 lines; the two lines CI and a newcomer copy (`# run command`, `# test command`,
which `.ci/run` greps and runs verbatim); no issue numbers, dates or clock times (those belong beside the
figures in docs/); every link into docs/ lands on a page, and on a heading when it names one.
docs/: `mkdocs build --strict` passes, so no page is missing from the nav and no link or anchor between
pages is broken (mkdocs.yml turns each of those into a warning, and --strict into a failure).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_README_LINES = 250

# what a README for users has no place for: they date it, and point at a tracker a user cannot read
FORBIDDEN = {
    "an issue number": re.compile(r"issue \d+", re.IGNORECASE),
    "a #number": re.compile(r"#\d+"),
    "a date": re.compile(r"20\d\d-\d\d-\d\d"),
    "a clock time": re.compile(r"\d\d:\d\d UTC"),
}
DOCS_LINK = re.compile(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_is_short():
    lines = readme().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("marker", ["# run command", "# test command"])
def test_readme_keeps_the_commands_a_newcomer_copies(marker):
    # .ci/run runs the line that *ends* in "# test command": the marker must close its line, exactly once
    ending = [line for line in readme().splitlines() if line.endswith(marker)]
    assert len(ending) == 1, f"README.md needs exactly one line ending in '{marker}', found {len(ending)}"
    assert ending[0].startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e ")


@pytest.mark.parametrize("what", sorted(FORBIDDEN))
def test_readme_has_no_issue_numbers_dates_or_times(what):
    hits = [f"line {n}: {line.strip()}" for n, line in enumerate(readme().splitlines(), 1) if FORBIDDEN[what].search(line)]
    assert not hits, f"README.md holds {what} (it belongs in docs/, beside its figure):\n" + "\n".join(hits)


def test_readme_links_into_docs_resolve():
    links = DOCS_LINK.findall(readme())
    assert links, "README.md links to no page under docs/"
    missing = sorted({target for target, _ in links if not (ROOT / target).is_file()})
    assert not missing, f"README.md links to pages that do not exist: {missing}"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]'): the site is not built")
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    return out


def test_docs_site_builds_strict(site):
    assert (site / "index.html").is_file()
    for page in sorted((ROOT / "docs").glob("*.md")):
        html = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert html.is_file(), f"docs/{page.name} was not built into the site"


def test_readme_links_into_docs_land_on_headings(site):
    for target, anchor in DOCS_LINK.findall(readme()):
        if not anchor:
            continue
        stem = Path(target).stem
        html = site / ("index.html" if stem == "index" else f"{stem}/index.html")
        assert f'id="{anchor}"' in html.read_text(encoding="utf-8"), f"{target} has no heading #{anchor}"
