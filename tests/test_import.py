"""`rtseg import`: a user's segmentation model becomes an rtseg model (argmax inside, classes and colours
named), or is refused in one line with nothing left behind."""

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from rtseg.core.errors import RtsegError  # noqa: E402
from rtseg.training.importer import ImportRequest, import_model, voc_palette  # noqa: E402
from helpers import frame_lines  # noqa: E402

PRETRAINED = Path(__file__).resolve().parents[2] / "shared" / "data" / "pretrained"


def logits_onnx(path: Path, classes: int = 4, size=(32, 40)) -> Path:
    """A 1x1 convolution from RGB to `classes` logits: what a foreign model's last layer looks like."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(classes, 3, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "W"], ["logits"])],
        "foreign",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, *size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes, *size])],
        [helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_logits_model_gets_its_argmax_labels_and_colours(tmp_path):
    import onnxruntime as ort

    src = logits_onnx(tmp_path / "room.onnx")
    (tmp_path / "labels.txt").write_text("floor\nwall\nperson\nchair\n")
    manifest = tmp_path / "home" / "models" / "manifest.json"
    entry = import_model(ImportRequest(src, labels=tmp_path / "labels.txt"), manifest)
    assert entry["name"] == "room" and entry["classes"] == ["floor", "wall", "person", "chair"]
    assert entry["palette_rgb"][:2] == [list(c) for c in voc_palette(2)] and entry["input_size"] == [32, 40]
    x = np.random.default_rng(1).normal(size=(1, 3, 32, 40)).astype(np.float32)
    ref = ort.InferenceSession(str(src)).run(None, {"input": x})[0].argmax(1)
    out = ort.InferenceSession(str(manifest.parent / "room.onnx")).run(["mask"], {"input": x})[0]
    assert out.dtype == np.uint8 and (out == ref).all()
    from rtseg.core.manifest import Manifest

    assert Manifest.load(manifest).entry("room")["file"] == "room.onnx"


@pytest.mark.parametrize(
    "make, labels, message",
    [
        (lambda p: p.write_text("not onnx"), None, "not a readable ONNX file"),
        (lambda p: logits_onnx(p, classes=4), "a\nb\n", "names 2 classes, the model predicts 4"),
    ],
)
def test_wrong_files_are_refused_and_nothing_is_left(tmp_path, make, labels, message):
    src = tmp_path / "bad.onnx"
    make(src)
    lab = None
    if labels:
        lab = tmp_path / "labels.txt"
        lab.write_text(labels)
    manifest = tmp_path / "home" / "models" / "manifest.json"
    with pytest.raises(RtsegError, match=message):
        import_model(ImportRequest(src, labels=lab), manifest)
    assert not manifest.exists() and not list(manifest.parent.glob("*.onnx"))


def test_other_file_kinds_are_refused(tmp_path):
    (tmp_path / "model.pb").write_text("x")
    with pytest.raises(RtsegError, match="imports .tflite"):
        import_model(ImportRequest(tmp_path / "model.pb"), tmp_path / "m" / "manifest.json")


@pytest.mark.shared
@pytest.mark.skipif(not PRETRAINED.is_dir(), reason="needs ../shared/data/pretrained")
def test_deeplab_tflite_imports_and_agrees_with_litert_on_real_frames(tmp_path):
    import cv2
    import onnxruntime as ort

    litert = pytest.importorskip("ai_edge_litert.interpreter")
    src = PRETRAINED / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
    manifest = tmp_path / "models" / "manifest.json"
    entry = import_model(ImportRequest(src, name="voc-dm05"), manifest)
    assert entry["classes"][15] == "person" and entry["input_size"] == [513, 513]
    session = ort.InferenceSession(str(manifest.parent / "voc-dm05.onnx"), providers=["CPUExecutionProvider"])
    it = litert.Interpreter(str(src))
    it.allocate_tensors()
    cap = cv2.VideoCapture(str(PRETRAINED.parent / "video" / "vtest.avi"))
    agreement = []
    for i in range(150):
        ok, frame = cap.read()
        if not ok or i % 50:
            continue
        rgb = cv2.cvtColor(cv2.resize(frame, (513, 513)), cv2.COLOR_BGR2RGB)
        it.set_tensor(it.get_input_details()[0]["index"], rgb[None])
        it.invoke()
        ref = it.get_tensor(it.get_output_details()[0]["index"])[0]
        x = (rgb.astype(np.float32) / 255 - np.array(entry["mean"], np.float32)) / np.array(entry["std"], np.float32)
        ours = session.run(["mask"], {"image": x.transpose(2, 0, 1)[None]})[0][0]
        agreement.append((ours == ref).mean())
    assert len(agreement) == 3 and min(agreement) >= 0.97, agreement


def test_imported_model_is_found_by_name_listed_and_runs(tmp_path, clip):
    import os

    from helpers import run_cli

    env = {**os.environ, "RTSEG_HOME": str(tmp_path / "home")}
    src = logits_onnx(tmp_path / "room.onnx", classes=3, size=(48, 64))
    (tmp_path / "labels.txt").write_text("floor\nwall\nperson\n")
    res = run_cli("import", src, "--labels", tmp_path / "labels.txt", "--name", "my-room", env=env)
    assert res.returncode == 0, res.stderr
    assert "imported my-room: 3 classes" in res.stdout
    listed = run_cli("models", env=env)
    assert listed.returncode == 0 and "my-room" in listed.stdout and "3 (floor, wall, person)" in listed.stdout
    res = run_cli("run", clip, "--model", "my-room", "--no-show", "--json", tmp_path / "f.jsonl", "--quiet", env=env)
    assert res.returncode == 0, res.stderr
    lines = frame_lines(tmp_path / "f.jsonl")
    assert len(lines) == 40 and set(lines[0]["class_share"]) == {"floor", "wall", "person"}
    clash = run_cli("import", src, "--labels", tmp_path / "labels.txt", "--name", "mnv2-050-lraspp-os32-240x320-voc-kd", env=env)
    assert clash.returncode == 1 and "a shipped model has that name" in clash.stderr and "Traceback" not in clash.stderr
