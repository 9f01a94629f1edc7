import os
import sys
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # the README's test command runs two workers (pytest -n 2): PyTorch's own thread pool in each, on every core,
    # would oversubscribe them (a training test ran 8x slower so); ONNX Runtime sizes its pools itself
    os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).parent))
from helpers import nearest_centre_onnx, write_clip  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return nearest_centre_onnx(tmp_path_factory.mktemp("models") / "nearest.onnx")


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.avi", 40)


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test marked `shared` may skip only where ../shared/data is missing: where it exists (CI has it), a
    skip hides a test that should have run, so it is reported as a failure with the skip's reason."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("shared") is not None and SHARED_DATA.is_dir():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"a `shared` test skipped although {SHARED_DATA} exists: {reason}"
