"""What users would notice first: a shipped model that segments worse than its manifest says.

Every shipped segmentation model is evaluated, exactly as `rtseg eval` does, on the split that selected it
(the held-out drive for the -voc models, val for the older ones) and must land within 0.5 mIoU of the
figure its manifest records; the default model's class map of one fixed frame must match a stored
reference. A change to preprocessing constants, resizing, the class-map decoding or the quantizer that
costs accuracy fails here, where a range check on the manifest would not.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.core.manifest import Manifest
from rtseg.core.modelinfo import resolve_model
from rtseg.evaluation.evaluate import evaluate
from rtseg.runtime.slot import load_slot

pytestmark = pytest.mark.shared

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
REFERENCE = Path(__file__).resolve().parent / "data" / "default_classmap.png"
REFERENCE_FRAME = "0006R0_f02400.png"  # a frame of the held-out drive: a bright sky, road, cars, buildings
TOLERANCE = 0.5  # mIoU points: ONNX Runtime's kernels differ a little between CPUs, a regression does more


def recorded() -> list[tuple[str, str, float]]:
    """(model, split, recorded mIoU) of every shipped segmentation model, on the split that selected it."""
    rows = []
    for e in Manifest.load().models:
        if e.get("task", "seg") == "det":
            continue
        split = e.get("training", {}).get("val_split", "val")
        metric = e.get("metrics", {}).get(f"camvid_{split}", {})
        if "miou" in metric and not metric.get("warning"):
            rows.append((e["name"], split, metric["miou"]))
    return rows


@pytest.fixture(scope="module", autouse=True)
def camvid():
    if not CAMVID.is_dir():
        pytest.skip(f"needs {CAMVID}")


@pytest.mark.parametrize("name, split, miou", recorded(), ids=[r[0] for r in recorded()])
def test_each_shipped_model_scores_what_its_manifest_says(name, split, miou):
    slot = load_slot(resolve_model(name), "onnxruntime")
    try:
        measured = evaluate(slot, str(CAMVID), split, progress=False)["miou"]
    finally:
        slot.close()
    assert abs(100 * measured - 100 * miou) <= TOLERANCE, (
        f"{name} on {split}: {100 * measured:.2f} mIoU, its manifest says {100 * miou:.2f}"
    )


def test_every_shipped_segmentation_model_is_measured():
    seg = [e["name"] for e in Manifest.load().models if e.get("task", "seg") != "det"]
    assert sorted(seg) == sorted(r[0] for r in recorded()), "a shipped model without a recorded figure to hold it to"


def default_class_map() -> tuple[str, np.ndarray]:
    """(the default model's name, its class map of REFERENCE_FRAME)."""
    info = resolve_model(None)
    slot = load_slot(info, "onnxruntime")
    try:
        return info.name, slot.process(cv2.imread(str(next(CAMVID.glob(f"*/{REFERENCE_FRAME}"))))).mask
    finally:
        slot.close()


def test_the_default_models_class_map_of_a_fixed_frame_matches_its_reference():
    name, mask = default_class_map()
    made_by = REFERENCE.with_suffix(".txt").read_text().strip()
    assert made_by == name, (
        f"the reference was made by {made_by}, the default is {name}: if the default changed "
        "on purpose, run `python tests/test_accuracy.py --regenerate`"
    )
    reference = cv2.imread(str(REFERENCE), cv2.IMREAD_UNCHANGED)
    assert mask.shape == reference.shape
    agree = float(np.mean(mask == reference))
    assert agree >= 0.995, f"{100 * agree:.2f} % of pixels agree with {REFERENCE.name}"


if __name__ == "__main__":  # python tests/test_accuracy.py --regenerate: a new default's reference class map
    import sys

    if sys.argv[1:] == ["--regenerate"]:
        name, mask = default_class_map()
        REFERENCE.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(REFERENCE), mask)
        REFERENCE.with_suffix(".txt").write_text(name + "\n")
        print(f"wrote {REFERENCE} ({name})")
