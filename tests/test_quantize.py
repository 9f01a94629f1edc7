"""INT8 export: calibration, metadata kept, and the accuracy gate's decision."""

import json

import pytest

torch = pytest.importorskip("torch")

from helpers import run_cli  # noqa: E402
from test_models import tiny_camvid  # noqa: E402,F401  (fixture)

from rtseg.training.export import ExportRequest, export_checkpoint  # noqa: E402
from rtseg.models import ModelSpec, build_model  # noqa: E402
from rtseg.training.quantize import gate  # noqa: E402


def test_gate_decides_on_the_drop():
    assert gate(0.60, 0.595, 1.0)[0]  # 0.5 points lost: accepted
    ok, msg = gate(0.60, 0.585, 1.0)  # 1.5 points lost: refused, and the numbers are said
    assert not ok and "60.00" in msg and "58.50" in msg and "1.50" in msg
    assert gate(0.60, 0.62, 0.0)[0]  # a gain always passes


@pytest.fixture
def shipped_tiny(tmp_path):
    spec = ModelSpec(width=0.35, head="lraspp", output_stride=32, input_size=(64, 96))
    torch.manual_seed(0)
    torch.save({"model": build_model(spec).state_dict(), "spec": spec.to_dict()}, tmp_path / "ck.pt")
    engines = tmp_path / "engines"
    export_checkpoint(ExportRequest(tmp_path / "ck.pt", engines, name="tiny", manifest_path=engines / "manifest.json"))
    return engines


def test_int8_export_gate_refuses_and_accepts(shipped_tiny, tiny_camvid, tmp_path):  # noqa: F811
    env = {**__import__("os").environ, "RTSEG_ENGINES_DIR": str(shipped_tiny)}
    base = ["export", "--model", "tiny", "--precision", "int8", "--calib-data", tiny_camvid, "--calib-images", "4"]
    res = run_cli(*base, "--max-drop", "-1", env=env, timeout=300)  # an impossible bound: must refuse
    assert res.returncode == 1 and "INT8 refused" in res.stderr and "FP32" in res.stderr
    assert not (shipped_tiny / "tiny-int8.onnx").exists()
    assert not [p for p in shipped_tiny.iterdir() if ".rtseg-" in p.name]  # nothing staged is left behind
    res = run_cli(*base, "--max-drop", "100", env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    manifest = json.loads((shipped_tiny / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["name"] == "tiny-int8")
    assert entry["precision"] == "int8" and entry["base_model"] == "tiny" and "camvid_val" in entry["metrics"]
    assert "camvid_val+stress" in entry["metrics"]  # gated on photometrically stressed frames too
    assert "drop" in entry["quantization"]["gate"] and "(stressed)" in entry["quantization"]["gate"]
    assert "7-bit" in entry["quantization"]["method"]
    res = run_cli("eval", "--model", "tiny-int8", "--data", tiny_camvid, "--quiet", env=env)
    assert res.returncode == 0 and "tiny-int8" in res.stdout  # metadata survived quantization


def test_calibration_leaves_the_held_out_drive_out(tmp_path):
    import cv2
    import numpy as np

    from rtseg.training.quantize import calibration_images

    (tmp_path / "train").mkdir()
    for drive in ("0001TP", "0006R0"):
        for i in range(5):
            cv2.imwrite(str(tmp_path / "train" / f"{drive}_{i:06d}.png"), np.zeros((4, 4, 3), np.uint8))
    assert len(calibration_images(tmp_path, 10)) == 10
    kept = calibration_images(tmp_path, 10, exclude_drive="0006R0")
    assert len(kept) == 5 and all(p.name.startswith("0001TP") for p in kept)


def test_the_two_qdq_layouts(shipped_tiny, tiny_camvid, tmp_path):  # noqa: F811
    """cpu: uint8 activations (ONNX Runtime's fast kernels); tensorrt: symmetric int8, float biases, which
    TensorRT's explicit quantization takes; each file says which it is."""
    import onnx

    from rtseg.core.modelinfo import resolve_model
    from rtseg.backends.qdq import check_symmetric_qdq
    from rtseg.training.quantize import calibration_images, quantize_int8

    info = resolve_model(str(shipped_tiny / "tiny.onnx"))
    images = calibration_images(tiny_camvid, 4)
    problems = {}
    for layout in ("cpu", "tensorrt"):
        out = quantize_int8(info, tmp_path / f"{layout}.onnx", images, layout=layout)
        problems[layout] = check_symmetric_qdq(onnx.load(str(out)))
        assert resolve_model(str(out)).entry["qdq"] == layout
    assert problems["tensorrt"] == []
    assert any("uint8" in p for p in problems["cpu"])


def test_a_refused_int8_file_never_replaces_the_shipped_one(shipped_tiny, tiny_camvid):  # noqa: F811
    env = {**__import__("os").environ, "RTSEG_ENGINES_DIR": str(shipped_tiny)}
    (shipped_tiny / "tiny-int8.onnx").write_bytes(b"the shipped INT8 file")
    res = run_cli(
        *"export --model tiny --precision int8 --calib-data".split(),
        tiny_camvid,
        *"--calib-images 4 --max-drop -1".split(),
        env=env,
        timeout=300,
    )
    assert res.returncode == 1 and "INT8 refused" in res.stderr
    assert (shipped_tiny / "tiny-int8.onnx").read_bytes() == b"the shipped INT8 file"


def test_cpu_int8_weights_cannot_saturate_a_cpu_without_vnni(shipped_tiny, tiny_camvid, tmp_path):  # noqa: F811
    """uint8 x int8 pair sums stay inside int16 when no weight of a matrix-product convolution passes 64;
    `saturation_risks` finds the ones that do (a full 8-bit file), and the cpu layout makes none."""
    import onnx

    from rtseg.core.modelinfo import resolve_model
    from rtseg.training.quantize import calibration_images, quantize_int8, saturation_risks

    info = resolve_model(str(shipped_tiny / "tiny.onnx"))
    images = calibration_images(tiny_camvid, 4)
    full = onnx.load(str(quantize_int8(info, tmp_path / "full.onnx", images, weight_bits="8")))
    assert saturation_risks(full), "a full-range file must be flagged"
    for bits in ("7-gemm", "7"):
        safe = onnx.load(str(quantize_int8(info, tmp_path / f"{bits}.onnx", images, weight_bits=bits)))
        assert saturation_risks(safe) == [], bits


def test_photometric_stresses_keep_labels_and_change_light():
    import numpy as np

    from rtseg.data.photometric import STRESSES, stress, stressed_copies

    img = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (2, 1, 3))
    label = np.zeros((2, 256), np.uint8)
    assert stress(img, "bright")[0, 200, 0] == 255 and stress(img, "dark")[0, 200, 0] < 100
    assert stress(img, "highlights")[0, 150, 0] == 255 and stress(img, "highlights")[0, 100, 0] == 100
    copies = list(stressed_copies([(img, label)]))
    assert len(copies) == len(STRESSES) and all(lab is label for _, lab in copies)
    assert all(np.all(np.diff(t.astype(int)) >= 0) for t in STRESSES.values())  # light never reverses order


def test_eval_stress_measures_every_frame_under_every_stress(shipped_tiny, tiny_camvid):  # noqa: F811
    from rtseg.data.photometric import STRESSES

    env = {**__import__("os").environ, "RTSEG_ENGINES_DIR": str(shipped_tiny)}
    plain = run_cli("eval", "--model", "tiny", "--data", tiny_camvid, "--quiet", env=env)
    stressed = run_cli("eval", "--model", "tiny", "--data", tiny_camvid, "--quiet", "--stress", env=env)
    assert plain.returncode == 0 and stressed.returncode == 0, stressed.stderr
    n = int(plain.stdout.split(" images")[0].rsplit("(", 1)[1])
    assert f"({n * len(STRESSES)} images" in stressed.stdout and "photometric stresses" in stressed.stdout
