"""Boxes: targets, learning, in-graph decoding, COCO AP on known cases, and the pipeline's box drawing."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import frame_lines, run_cli  # noqa: E402
from test_models import tiny_camvid  # noqa: E402,F401  (fixture)

from rtseg.data.boxes import DET_CLASSES  # noqa: E402
from rtseg.evaluation.detmetrics import coco_map  # noqa: E402
from rtseg.models.deploy import ExportWrapper
from rtseg.training.export import export_onnx  # noqa: E402
from rtseg.models import ModelSpec, build_model  # noqa: E402
from rtseg.models.detection import decode, detection_loss, encode_targets  # noqa: E402
from rtseg.runtime.postprocess import Postprocessor  # noqa: E402


def test_targets_peak_at_box_centres():
    boxes = np.array([[8, 8, 24, 40], [40, 20, 60, 28]], np.float32)
    t = encode_targets(boxes, np.array([0, 2]), (64, 96))
    assert t["heatmap"].shape == (3, 16, 24)
    assert t["heatmap"][0, 6, 4] == 1.0 and t["heatmap"][2, 6, 12] == 1.0  # centres (16, 24) and (50, 24) / 4
    assert t["heatmap"][1].max() == 0
    assert t["mask"].sum() == 2
    np.testing.assert_allclose(np.exp(t["size"][t["mask"] > 0]), [[4, 8], [5, 2]], rtol=1e-5)  # sorted by area


@pytest.mark.parametrize("task", ["det", "segdet"])
def test_learns_and_decodes_a_box(task):
    torch.manual_seed(0)
    spec = ModelSpec(width=0.35, task=task, output_stride=16, input_size=(64, 96))
    model = build_model(spec).train()
    x = torch.randn(2, 3, 64, 96)
    box = np.array([[20, 16, 52, 48]], np.float32)
    t = encode_targets(box, np.array([1]), (64, 96))
    targets = {k: torch.from_numpy(np.stack([v, v])) for k, v in t.items()}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss = detection_loss(model(x), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    with torch.no_grad():
        boxes, scores, labels = decode(model(x))  # train-mode BN: the statistics it learned with
    b = boxes[0, 0].numpy()
    inter = max(0, min(b[2], 52) - max(b[0], 20)) * max(0, min(b[3], 48) - max(b[1], 16))
    iou = inter / ((b[2] - b[0]) * (b[3] - b[1]) + 32 * 32 - inter)
    assert labels[0, 0] == 1 and scores[0, 0] > 0.3 and iou > 0.5


@pytest.mark.parametrize("task", ["det", "segdet"])
def test_onnx_boxes_match_pytorch(task, tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    spec = ModelSpec(width=0.35, task=task, input_size=(64, 96))
    model = build_model(spec).eval()
    torch.nn.init.normal_(model.det_head.heatmap[-1].weight, std=0.1)  # spread the scores
    export_onnx(model, spec, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == (["mask"] if task == "segdet" else []) + ["boxes", "scores", "labels"]
    x = torch.randn(1, 3, 96, 128)  # not the export size: shapes are dynamic
    with torch.no_grad():
        ref = ExportWrapper(model, task)(x)
    got = dict(zip(names, session.run(None, {"image": x.numpy()})))
    np.testing.assert_allclose(got["scores"], ref[-2].numpy(), atol=1e-4)
    # equal scores may come out in either order, and a tie at the cut-off may swap one detection for
    # another: every ONNX detection must be among PyTorch's (same class, same box), bar a couple at the edge
    ref_boxes, ref_labels = ref[-3].numpy()[0], ref[-1].numpy()[0]
    matched = sum(
        np.abs(ref_boxes[ref_labels == c] - b).max(axis=1).min(initial=np.inf) < 1e-2 for b, c in zip(got["boxes"][0], got["labels"][0])
    )
    assert matched >= 97


def test_coco_map_on_known_cases():
    gt = [(np.array([[10, 10, 50, 50], [60, 10, 80, 50]], np.float32), np.array([0, 1]))]
    perfect = [(gt[0][0], np.array([0.9, 0.8]), gt[0][1])]
    r = coco_map(gt, perfect, DET_CLASSES)
    assert r["map50"] == pytest.approx(1.0) and r["map"] == pytest.approx(1.0)
    assert r["per_class_ap50"]["Bicyclist"] is None  # no ground truth: not averaged in
    # shifted boxes: IoU 0.6 with the truth passes 0.5/0.55/0.6 of the ten thresholds -> AP 0.3
    shifted = gt[0][0] + np.array([[10, 0, 10, 0], [5, 0, 5, 0]], np.float32)
    ious = [30 * 40 / (50 * 40), 15 * 40 / (25 * 40)]
    assert ious == pytest.approx([0.6, 0.6])
    r = coco_map(gt, [(shifted, np.array([0.9, 0.8]), gt[0][1])], DET_CLASSES)
    assert r["map50"] == pytest.approx(1.0) and r["map"] == pytest.approx(0.3)
    # a wrong class scores nothing; no detections at all is 0, not an error
    assert coco_map(gt, [(gt[0][0], np.array([0.9, 0.8]), np.array([2, 2]))], DET_CLASSES)["map50"] == 0
    assert coco_map(gt, [(np.zeros((0, 4)), np.zeros(0), np.zeros(0))], DET_CLASSES)["map50"] == 0


def test_postprocess_scales_thresholds_and_clips_boxes():
    post = Postprocessor([(0, 0, 0)] * 11, tuple(f"c{i}" for i in range(11)), det_classes=DET_CLASSES, score_threshold=0.5)
    outputs = {
        "boxes": np.array([[[10, 10, 20, 30], [90, 50, 110, 70], [0, 0, 5, 5]]], np.float32),
        "scores": np.array([[0.9, 0.6, 0.2]], np.float32),
        "labels": np.array([[0, 2, 1]], np.int32),
    }
    dets = post.detections(outputs, input_hw=(64, 96), frame_size=(192, 128))  # frame twice the input
    assert [d.class_id for d in dets] == [0, 2]
    assert dets[0].box == (20, 20, 40, 60)
    assert dets[1].box == (180, 100, 192, 128)  # clipped to the frame


def test_segdet_train_export_eval(tiny_camvid, tmp_path, clip):  # noqa: F811
    run = tmp_path / "run"
    res = run_cli(
        "train",
        "--data",
        tiny_camvid,
        *"--task segdet --width 0.35 --input-size 64x96 --epochs 1 --batch-size 2 --out".split(),
        run,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "map50" in (run / "log.csv").read_text()
    res = run_cli("export", "--checkpoint", run / "best.pt", "--out-dir", tmp_path, "--no-manifest", "--name", "sd")
    assert res.returncode == 0, res.stderr[-2000:]
    res = run_cli("eval", "--model", tmp_path / "sd.onnx", "--data", tiny_camvid, "--json", tmp_path / "r.json", "--quiet")
    assert res.returncode == 0, res.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert "miou" in r and 0 <= r["detection"]["map50"] <= 1 and r["detection"]["gt_boxes"] == 2  # one car per val image
    js = tmp_path / "f.jsonl"
    res = run_cli("run", clip, "--model", tmp_path / "sd.onnx", "--no-show", "--json", js, "--score-threshold", "0")
    assert res.returncode == 0, res.stderr
    line = frame_lines(js)[0]
    assert "class_share" in line and len(line["boxes"]) == 100  # threshold 0 keeps all top-K
