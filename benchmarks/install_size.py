"""What each install of rtseg takes on disk, measured in fresh virtualenvs (README's sizes come from here).

    python benchmarks/install_size.py [--extras ",train"] [--out benchmarks/results/install_size]

For each extra ("" is the runtime install): a new virtualenv, `pip install "<repo>[extra]"` (pip's cache and
index as configured on this machine), then the size of the whole virtualenv (every file's bytes, as `du -sm`
counts them, MiB) and the five largest installed distributions. Python's own venv skeleton is included:
it is what a user's disk holds after the command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, header_markdown, write_report  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def tree_mib(path: Path) -> float:
    """Bytes of every regular file under `path` (links not followed), in MiB."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def largest(site: Path, n: int = 5) -> list[tuple[str, float]]:
    """The `n` largest top-level folders of site-packages (a distribution's import package, roughly)."""
    sizes = [(p.name, tree_mib(p)) for p in site.iterdir() if p.is_dir() and not p.name.endswith((".dist-info", "__pycache__"))]
    return sorted(sizes, key=lambda x: -x[1])[:n]


def measure(extra: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        venv = Path(d) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        t0 = time.time()
        subprocess.run(pip + [f"{REPO}{'[' + extra + ']' if extra else ''}"], check=True)
        seconds = time.time() - t0
        site = next((venv / "lib").glob("python*/site-packages"))
        return {
            "extra": extra or "(runtime)",
            "mib": round(tree_mib(venv), 1),
            "install_s": round(seconds, 1),
            "largest": [(name, round(mib, 1)) for name, mib in largest(site)],
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--extras", default=",train", help='comma-separated extras; "" (the first) is the runtime install')
    ap.add_argument("--out", default=str(HERE / "results" / "install_size"))
    args = ap.parse_args()
    env = environment()
    rows = [measure(e) for e in args.extras.split(",")]
    lines = [
        "# Install sizes",
        "",
        header_markdown(env),
        "",
        "| install | size (MiB, whole venv) | install time (s, pip cache warm) | largest packages (MiB) |",
        "|---|---:|---:|---|",
    ]
    for r in rows:
        what = "pip install ." if r["extra"] == "(runtime)" else f'pip install ".[{r["extra"]}]"'
        lines.append(f"| `{what}` | {r['mib']:.0f} | {r['install_s']:.0f} | " + ", ".join(f"{n} {m:.0f}" for n, m in r["largest"]) + " |")
    write_report(args.out, lines, {"environment": env, "rows": rows})


if __name__ == "__main__":
    main()
