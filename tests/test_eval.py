import json

import cv2
import numpy as np
import pytest

from helpers import class_frame, run_cli

from rtseg.data.camvid import CLASSES


@pytest.fixture
def camvid_like(tmp_path):
    """Two 48x64 image/label pairs: every image is uniformly class 3 (Road) for the model, the labels are
    Road on the left half, Car on the right half, with a void band; so Road IoU = 1/2, Car IoU = 0."""
    for split in ("val", "valannot"):
        (tmp_path / split).mkdir()
    for i in range(2):
        cv2.imwrite(str(tmp_path / "val" / f"f{i}.png"), class_frame(3))
        label = np.full((48, 64), 3, np.uint8)
        label[:, 32:] = 8
        label[:8] = 11  # void: ignored
        cv2.imwrite(str(tmp_path / "valannot" / f"f{i}.png"), label)
    return tmp_path


def test_eval_reports_known_miou(tiny_model, camvid_like, tmp_path):
    out = tmp_path / "r.json"
    res = run_cli("eval", "--model", tiny_model, "--data", camvid_like, "--json", out, "--quiet")
    assert res.returncode == 0, res.stderr
    r = json.loads(out.read_text())
    iou = r["per_class_iou"]
    # Road: tp = 40x32 per image, fp = 40x32 (the Car half) -> 1/2; Car: never predicted -> 0
    assert iou["Road"] == pytest.approx(0.5)
    assert iou["Car"] == 0.0
    assert all(iou[c] is None for c in CLASSES if c not in ("Road", "Car"))
    assert r["miou"] == pytest.approx(0.25)
    assert r["pixel_accuracy"] == pytest.approx(0.5)
    assert "mIoU" in res.stdout


def test_eval_missing_split_is_a_clear_error(tiny_model, tmp_path):
    res = run_cli("eval", "--model", tiny_model, "--data", tmp_path, "--split", "test")
    assert res.returncode == 1
    assert "testannot" in res.stderr and "Traceback" not in res.stderr


def test_box_eval_without_pycocotools_fails_before_any_work(monkeypatch):
    from types import SimpleNamespace

    from rtseg.core.errors import RtsegError
    from rtseg.evaluation.evaluate import measure

    monkeypatch.setitem(__import__("sys").modules, "pycocotools", None)
    monkeypatch.setitem(__import__("sys").modules, "pycocotools.cocoeval", None)
    info = SimpleNamespace(name="boxes", task="det", det_classes=("Car",), classes=("Sky",))

    def samples():
        raise AssertionError("an image was processed before the missing package was reported")
        yield

    with pytest.raises(RtsegError, match="pycocotools"):
        measure(SimpleNamespace(info=info, input_size=(8, 8)), samples())
