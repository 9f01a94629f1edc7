"""DeepLab MobileNet-EdgeTPU as an rtseg model: built from its table without Google's file, it trains in rtseg's
loop, resumes, exports to an ONNX file that rtseg evaluates and runs (input (x - 128) / 128 recorded), and
teaches a MobileNetV2 student; with ../shared, the cityscapes-tflite start is the zero-shot port itself."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import frame_lines, run_cli  # noqa: E402
from test_models import tiny_camvid  # noqa: E402,F401  (fixture)

from rtseg.models import ModelSpec, build_model  # noqa: E402
from rtseg.models.deploy import ExportWrapper  # noqa: E402

EDGETPU = Path(__file__).resolve().parents[2] / "shared" / "data" / "pretrained" / "deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite"
TINY = ("--encoder", "edgetpu", "--width", "0.5", "--input-size", "64x96", "--batch-size", "2", "--threads", "1")
TF_INPUT = [128 / 255] * 3


def _spec(**kw) -> ModelSpec:
    return ModelSpec(**{"encoder": "edgetpu", "head": "aspplite", "width": 0.75, "input_size": (64, 96), **kw})


def test_builds_from_its_table_and_gives_logits_at_the_input_size():
    spec = _spec()
    assert spec.name == "edgetpu-075-dlv3-os16-64x96"
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", spec.name)
    assert list(spec.mean) == list(spec.std) == TF_INPUT  # Google's (x - 128) / 128
    model = build_model(spec).eval()
    with torch.no_grad():
        for size in ((64, 96), (72, 100)):  # any size: TF's 'SAME' padding, pooling over the whole map
            assert model(torch.randn(1, 3, *size)).shape == (1, 11, *size)
    # the file's channel counts at width 0.75: stem 24, blocks 16 .. 144, the last 1x1 1280, head 128
    assert model.stem.conv.conv.out_channels == 24 and model.conv_1.conv.out_channels == 1280
    assert model.blocks.expanded_conv_21.out_channels == 144 and model.logits.in_channels == 128
    # output stride 16: the stride-32 block keeps the resolution, the blocks after it are dilated by 2
    dw = model.blocks.expanded_conv_17.layers.depthwise.conv
    assert (dw.stride, dw.dilation) == ((1, 1), (1, 1))
    assert model.blocks.expanded_conv_18.layers.depthwise.conv.dilation == (2, 2)
    with pytest.raises(ValueError, match="ASPP-lite"):
        build_model(_spec(head="deeplabv3plus"))


def test_trains_resumes_exports_and_rtseg_runs_the_onnx(tiny_camvid, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    args = ("train", "--data", tiny_camvid, *TINY, "--epochs", "2", "--warmup-epochs", "0.5", "--out", run)
    res = run_cli(*args, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len((run / "log.csv").read_text().splitlines()) == 3
    ck = torch.load(run / "best.pt", map_location="cpu", weights_only=True)  # loadable as a --distill teacher is
    assert ck["spec"]["encoder"] == "edgetpu" and ck["spec"]["head"] == "aspplite"
    res = run_cli(*args, "--resume", timeout=300)
    assert res.returncode == 0 and "resumed" in res.stdout, res.stderr[-2000:]

    engines, manifest = tmp_path / "engines", tmp_path / "engines" / "manifest.json"
    res = run_cli(
        "export", "--checkpoint", run / "best.pt", "--out-dir", engines, "--manifest", manifest, "--name", "tiny-edgetpu", timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    entry = json.loads(manifest.read_text())["models"][0]
    assert entry["mean"] == entry["std"] == pytest.approx(TF_INPUT)
    assert entry["architecture"]["encoder"] == "edgetpu" and "--head aspplite" in entry["training"]["command"]

    import onnxruntime as ort

    from rtseg.training.export import load_checkpoint

    model, spec, _ = load_checkpoint(run / "best.pt")  # rebuilt from the spec alone
    x = torch.randn(1, 3, 80, 112)  # another size than trained: the graph's height and width are free
    with torch.no_grad():
        ref = ExportWrapper(model)(x)[0].numpy()
    got = ort.InferenceSession(str(engines / "tiny-edgetpu.onnx"), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    assert got.shape == ref.shape == (1, 80, 112) and (got == ref).mean() > 0.99

    onnx_path = engines / "tiny-edgetpu.onnx"
    res = run_cli("eval", "--model", onnx_path, "--data", tiny_camvid, "--json", tmp_path / "r.json", "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    assert 0.0 <= json.loads((tmp_path / "r.json").read_text())["miou"] <= 1.0
    res = run_cli("run", tiny_camvid / "val", "--model", onnx_path, "--no-show", "--json", tmp_path / "frames.jsonl", timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(frame_lines(tmp_path / "frames.jsonl")) == 2


def test_teaches_a_mobilenetv2_student(tiny_camvid, tmp_path):  # noqa: F811
    from rtseg.training.distill import Teacher

    torch.manual_seed(0)
    spec = _spec(width=0.5)
    teacher_model = build_model(spec).eval()
    torch.save({"model": teacher_model.state_dict(), "spec": spec.to_dict()}, tmp_path / "teacher.pt")
    # the student's batch is ImageNet-normalised; the teacher sees the same pixels as (x - 128) / 128
    student = ModelSpec(width=0.35, head="lraspp", output_stride=32, input_size=(64, 96))
    teacher = Teacher(tmp_path / "teacher.pt", student, torch.device("cpu"))
    pixels = torch.rand(1, 3, 64, 96)
    as_student = (pixels - torch.tensor(student.mean).view(1, 3, 1, 1)) / torch.tensor(student.std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(teacher.logits(as_student), teacher_model((pixels - 128 / 255) / (128 / 255)), atol=1e-4)
    res = run_cli(
        "train",
        "--data",
        tiny_camvid,
        *"--width 0.35 --head lraspp --output-stride 32 --input-size 64x96 --epochs 1 --batch-size 2 --threads 1 --distill".split(),
        tmp_path / "teacher.pt",
        "--out",
        tmp_path / "student",
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "student" / "best.pt").exists()


@pytest.mark.parametrize(
    "extra, problem",
    [
        (("--head", "lraspp"), "ASPP-lite segmentation model at output stride 16 only"),
        (("--task", "det"), "ASPP-lite segmentation model at output stride 16 only"),
        (("--pretrained", "cityscapes-tflite:/nonexistent.tflite"), "no such file"),
    ],
)
def test_what_the_architecture_cannot_do_is_one_line(tiny_camvid, tmp_path, extra, problem):  # noqa: F811
    res = run_cli("train", "--data", tiny_camvid, *TINY, "--epochs", "1", *extra, "--out", tmp_path / "run")
    assert res.returncode == 1 and problem in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
    res = run_cli(
        "train", "--data", tiny_camvid, "--encoder", "slim", "--pretrained", f"cityscapes-tflite:{EDGETPU}", "--out", tmp_path / "run"
    )
    assert res.returncode == 1 and "need --encoder edgetpu" in res.stderr


@pytest.mark.shared
@pytest.mark.skipif(not EDGETPU.is_file(), reason="needs ../shared/data/pretrained")
def test_the_cityscapes_start_is_the_zero_shot_port():
    """Before training, the model is the port (unclipped) with the 11-class head from the merged classes; its
    batch norms carry real statistics for training, and still cancel in eval mode."""
    from rtseg.data.camvid import CLASSES
    from rtseg.data.classmap import load_class_map
    from rtseg.core.errors import RtsegError
    from rtseg.models.tflite_edgetpu import CITYSCAPES_TO_CAMVID_PREFER, EdgeTPUDeepLab, merged_head
    from rtseg.training.pretrained import load_pretrained

    rng = np.random.default_rng(0)
    calibration = [rng.integers(0, 256, (96, 128, 3), np.uint8) for _ in range(4)]
    spec = _spec(input_size=(96, 128))
    model = load_pretrained(build_model(spec), spec, f"cityscapes-tflite:{EDGETPU}", calibration).eval()
    assert not torch.allclose(model.stem.bn.running_var, torch.ones(24) - model.stem.bn.eps)  # unfolded
    port = EdgeTPUDeepLab(EDGETPU, clip=False).eval()
    port.replace_head(
        merged_head(port.logits, port.classes, load_class_map("cityscapes-to-camvid").mapping, CLASSES, CITYSCAPES_TO_CAMVID_PREFER),
        CLASSES,
    )
    x = torch.from_numpy((rng.integers(0, 256, (1, 3, 96, 128)).astype(np.float32) - 128) / 128)
    with torch.no_grad():
        ours, theirs = model(x), port.segment(x)
    assert torch.allclose(ours, theirs, atol=1e-3 * theirs.abs().max().item())
    assert (ours.argmax(1) == theirs.argmax(1)).float().mean() > 0.999
    with pytest.raises(RtsegError, match="width 0.75"):
        wide = _spec(width=1.0)
        load_pretrained(build_model(wide), wide, f"cityscapes-tflite:{EDGETPU}")
