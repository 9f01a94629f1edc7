"""A plain install works: the wheel carries the models, and rtseg runs from any folder in a clean virtualenv."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the tree (no build/ or egg-info left in the checkout, none from before reused)."""
    import shutil

    src, out = tmp_path_factory.mktemp("src") / "rtseg", tmp_path_factory.mktemp("wheel")
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", "*.egg-info", "__pycache__", "*.pt", "bench-results"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return next(out.glob("rtseg-*.whl"))


def test_wheel_ships_the_onnx_models_and_the_schema(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    manifest = __import__("json").loads((ROOT / "engines" / "manifest.json").read_text())
    assert "rtseg/engines/manifest.json" in names and "rtseg/schemas/frame.schema.json" in names
    assert "rtseg/engines/speeds.json" in names  # the selector's first use scales these by one probe
    assert {f"rtseg/engines/{m['file']}" for m in manifest["models"]} <= names
    assert not any(n.endswith(".pt") for n in names)  # training weights stay in the repository
    # the shipped zoo is the held-out Pareto front and the box models: a download people accept (28 MB today)
    assert wheel.stat().st_size < 40e6, f"the wheel is {wheel.stat().st_size / 1e6:.1f} MB"


def _tiny_camvid(root: Path) -> Path:
    """Two val frames and labels in CamVid's layout (enough to check that eval runs from an install)."""
    for split in ("val", "valannot"):
        (root / split).mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(root / "val" / f"0016E5_0{i}.png"), np.full((90, 120, 3), 90, np.uint8))
        cv2.imwrite(str(root / "valannot" / f"0016E5_0{i}.png"), np.full((90, 120), 3, np.uint8))
    return root


def test_clean_venv_runs_from_another_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTSEG_")}
    env |= {"RTSEG_CACHE_DIR": str(tmp_path / "cache"), "RTSEG_HOME": str(tmp_path / "home")}

    def rtseg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / "rtseg"), *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)

    models = rtseg("models")
    assert models.returncode == 0 and "mnv2-050" in models.stdout, models.stderr
    run = rtseg("run", str(ROOT / "examples" / "camvid_0016E5.mp4"), "--frames", "8", "--no-show", "--output", "o.mp4")
    assert run.returncode == 0, run.stderr
    assert "frames in 8, out 8" in run.stderr and (work / "o.mp4").stat().st_size > 0
    assert "H.264 via PyAV" in run.stderr  # the plain install writes what browsers and phones play
    # only the box model serves --task det: one short profile, then the run
    fps = rtseg("run", str(ROOT / "examples" / "camvid_0016E5.mp4"), "--frames", "8", "--no-show", "--target-fps", "5", "--task", "det")
    assert fps.returncode == 0 and "selector:" in fps.stderr, fps.stderr
    ev = rtseg("eval", "--data", str(_tiny_camvid(tmp_path / "camvid")), "--split", "val")
    assert ev.returncode == 0 and "mIoU" in ev.stdout, ev.stderr
    # the package itself, not the checkout, is what ran
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import rtseg.core.paths as p; print(p.ENGINES_DIR)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert str(venv) in where.stdout
