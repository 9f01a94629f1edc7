"""Google's DeepLab MobileNet-EdgeTPU (Cityscapes) TFLite file as a PyTorch network: the port's arithmetic
(TF padding, heads for other classes) on its own, and (with ../shared) layer by layer and end to end against
the LiteRT interpreter, and through `rtseg import` to `rtseg run`."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rtseg.core.errors import RtsegError  # noqa: E402
from rtseg.models.tflite_edgetpu import ConvAct, merged_head  # noqa: E402
from rtseg.models.tflite_reader import ConvLayer  # noqa: E402
from helpers import frame_lines  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PRETRAINED = SHARED / "pretrained"
EDGETPU = PRETRAINED / "deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite"


def needs_shared(test):
    return pytest.mark.shared(pytest.mark.skipif(not EDGETPU.is_file(), reason="needs ../shared/data/pretrained")(test))


def _layer(k=3, stride=1, dilation=1, padding="SAME", depthwise=False, channels=2) -> ConvLayer:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(channels, 1 if depthwise else channels, k, k)).astype(np.float32)
    return ConvLayer("test", w, np.zeros(channels, np.float32), stride, dilation, depthwise, "none", padding)


@pytest.mark.parametrize("size", [32, 33, 45, 46])
@pytest.mark.parametrize("k, stride, dilation, depthwise", [(3, 2, 1, False), (5, 1, 2, True), (3, 2, 1, True), (5, 1, 1, True)])
def test_convolutions_pad_as_tensorflow_same_does(size, k, stride, dilation, depthwise):
    c = _layer(k, stride, dilation, depthwise=depthwise)
    x = torch.randn(1, 2, size, size)
    span = (k - 1) * dilation
    total = max((-(-size // stride) - 1) * stride + span + 1 - size, 0)  # TF: the odd pixel goes after
    pad = [total // 2, total - total // 2] * 2
    ref = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, pad), torch.from_numpy(c.weight), stride=stride, dilation=dilation, groups=2 if depthwise else 1
    )
    got = ConvAct(c)(x)
    assert got.shape == ref.shape == (1, 2, -(-size // stride), -(-size // stride))
    assert torch.allclose(got, ref, atol=1e-5)


def test_valid_padding_pads_nothing():
    assert ConvAct(_layer(3, padding="VALID"))(torch.randn(1, 2, 9, 9)).shape == (1, 2, 7, 7)


def test_a_head_for_fewer_classes_starts_from_the_mapped_classes():
    torch.manual_seed(0)
    logits = torch.nn.Conv2d(8, 4, 1)
    model_classes = ("road", "light", "sign", "wall")
    mapping = {"road": "Road", "light": "Sign", "sign": "Sign", "wall": "Building"}
    head = merged_head(logits, model_classes, mapping, ("Building", "Road", "Sign", "Sky"), prefer={"Sign": "sign"})
    assert head.out_channels == 4 and head.in_channels == 8
    for new, old in ((0, 3), (1, 0), (2, 2)):  # Building <- wall, Road <- road, Sign <- sign (preferred over light)
        assert torch.equal(head.weight[new], logits.weight[old]) and head.bias[new] == logits.bias[old]
    assert head.bias[3] < logits.bias.min()  # Sky: nothing maps there, it starts least likely
    x = torch.randn(1, 8, 5, 5)
    agree = head(x).argmax(1) == torch.tensor([1, 2, 2, 0])[logits(x).argmax(1)]
    assert agree[logits(x).argmax(1) != 1].all()  # wherever the dropped member ('light') did not win
    head = merged_head(logits, model_classes, mapping, ("Building", "Road", "Sign", "Sky"))
    assert torch.equal(head.weight[2], logits.weight[1])  # no preference: the first member, 'light'
    with pytest.raises(RtsegError, match="'wall' is left unmapped"):
        merged_head(logits, model_classes, {k: v for k, v in mapping.items() if k != "wall"}, ("Building", "Road", "Sign"))
    with pytest.raises(RtsegError, match="not a model class mapped onto Sign"):
        merged_head(logits, model_classes, mapping, ("Building", "Road", "Sign"), prefer={"Sign": "road"})


def test_a_file_that_is_not_tflite_is_one_line_error(tmp_path):
    pytest.importorskip("tflite")
    from rtseg.models.tflite_reader import read_tflite

    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x00not a flatbuffer\n" * 10)
    with pytest.raises(RtsegError, match="not a TFLite model") as e:
        read_tflite(bad)
    assert "\n" not in str(e.value)


# -- against LiteRT (../shared) -------------------------------------------------------------------------
def _frames():
    """The file's example image, and three CamVid frames squeezed to the file's 513x513, as RGB."""
    import cv2

    frames = [cv2.imread(str(PRETRAINED / "cityscapes_segmentation.bmp"))]
    camvid = sorted((SHARED / "camvid" / "val").glob("*.png"))
    frames += [cv2.resize(cv2.imread(str(p)), (513, 513)) for p in camvid[:: len(camvid) // 3][:3]]
    return [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]


def _litert(preserve=False):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    import warnings

    with warnings.catch_warnings():  # preserve_all_tensors warns that it is for debugging, which this is
        warnings.simplefilter("ignore")
        it = litert.Interpreter(str(EDGETPU), experimental_preserve_all_tensors=preserve)
    it.allocate_tensors()
    return it


def _run(it, rgb):
    it.set_tensor(it.get_input_details()[0]["index"], rgb[None])
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])[0]


def _dequantized(it, f, index):
    scale, zero = f.quantization(index)
    return (it.get_tensor(index).astype(np.float32) - zero) * scale


def _nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def _port_input(rgb):
    return torch.from_numpy(((rgb.astype(np.float32) - 128) / 128).transpose(2, 0, 1)[None])


@pytest.fixture(scope="module")
def port():
    from rtseg.models.tflite_edgetpu import EdgeTPUDeepLab
    from rtseg.models.tflite_reader import read_tflite

    torch.set_num_threads(1)
    f = read_tflite(EDGETPU)
    return f, EdgeTPUDeepLab(f).eval()


@needs_shared
def test_every_convolution_computes_what_litert_does_within_half_a_quantization_step(port):
    """Each convolution fed LiteRT's own input gives LiteRT's output to within its rounding: the weights,
    folded biases, strides, dilations, 'SAME' padding, activations and clipping are the file's."""
    f, net = port
    it = _litert(preserve=True)
    _run(it, _frames()[2])
    convs = [m for m in net.modules() if isinstance(m, ConvAct)]
    assert len(convs) == 1 + 1 + 8 * 2 + 13 * 3 + 1 + 3  # stem, projection-only block, fused, unfused, Conv_1, head
    worst = {}
    with torch.no_grad():
        for m in convs:
            x, y = m.tensors
            ours = m(_nchw(_dequantized(it, f, x))).numpy().transpose(0, 2, 3, 1)
            worst[m.scope] = float(np.abs(ours - _dequantized(it, f, y)).max() / f.quantization(y)[0][0])
    assert max(worst.values()) <= 0.5 + 1e-3, {k: v for k, v in worst.items() if v > 0.5 + 1e-3}


@needs_shared
def test_logits_and_class_maps_agree_with_litert(port):
    """End to end the port (float) and LiteRT (8-bit) part only by the rounding that 80 layers accumulate:
    logits within 0.8 (mean |diff|, 4 of the logits' quantization steps of 0.2015), class maps equal on
    >= 99% of the example image's pixels and >= 93% of the CamVid frames' (measured: 99.1%; 94.1-95.7%)."""
    f, net = port
    it = _litert(preserve=True)
    logits_tensor = next(op.outputs[0] for op in f.ops if f.name(op.outputs[0]).startswith("logits/semantic/BiasAdd"))
    agreement, error = [], []
    for rgb in _frames():
        ref_map = _run(it, rgb)
        ref = _dequantized(it, f, logits_tensor)
        with torch.no_grad():
            logits = net(_port_input(rgb))
            ours = net.segment(_port_input(rgb)).argmax(1)[0].numpy()
            # LiteRT's own logits, resized as the port resizes: the class map is bilinear with align_corners
            theirs = (
                torch.nn.functional.interpolate(_nchw(ref), size=(513, 513), mode="bilinear", align_corners=net.align_corners)
                .argmax(1)[0]
                .numpy()
            )
        assert logits.shape == (1, 19, 33, 33)
        error.append(float(np.abs(logits.numpy().transpose(0, 2, 3, 1) - ref).mean()))
        agreement.append(float((ours == ref_map).mean()))
        assert (theirs == ref_map).mean() >= 0.99  # the rest of the gap is LiteRT's 8-bit resize
    assert max(error) <= 0.8, error
    assert agreement[0] >= 0.99 and min(agreement[1:]) >= 0.93, agreement


@needs_shared
def test_any_input_size_gives_logits_at_a_sixteenth(port):
    _, net = port
    with torch.no_grad():
        for h, w in ((360, 480), (64, 96), (65, 97)):  # 'SAME' rounds up: 360 / 16 = 22.5 -> 23
            assert net(torch.zeros(1, 3, h, w)).shape == (1, 19, -(-h // 16), -(-w // 16))


@needs_shared
def test_a_file_of_another_network_is_refused_in_one_line():
    from rtseg.models.tflite_edgetpu import EdgeTPUDeepLab

    with pytest.raises(RtsegError, match="not a DeepLab MobileNet-EdgeTPU file .*MobilenetV2/Conv") as e:
        EdgeTPUDeepLab(PRETRAINED / "deeplabv3_mnv2_dm05_pascal_quant.tflite")
    assert "\n" not in str(e.value)


@needs_shared
def test_import_gives_a_cityscapes_street_model_that_runs_at_once(tmp_path, port):
    import json
    import os

    import cv2
    import onnxruntime as ort
    from helpers import run_cli

    from rtseg.data import cityscapes

    env = {**os.environ, "RTSEG_HOME": str(tmp_path / "home")}
    res = run_cli("import", EDGETPU, "--name", "street", env=env)
    assert res.returncode == 0, res.stderr
    assert "imported street: 19 classes, input 513x513" in res.stdout
    manifest = json.loads((tmp_path / "home" / "models" / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["name"] == "street")
    assert entry["classes"] == list(cityscapes.CLASSES) and entry["classes"][11] == "person"
    assert entry["palette_rgb"] == cityscapes.PALETTE_RGB.tolist() and entry["palette_rgb"][0] == [128, 64, 128]
    # the exported file computes the port's class map (ONNX Runtime and PyTorch, both float)
    rgb = _frames()[0]
    session = ort.InferenceSession(str(tmp_path / "home" / "models" / "street.onnx"), providers=["CPUExecutionProvider"])
    x = (rgb.astype(np.float32) / 255 - np.array(entry["mean"], np.float32)) / np.array(entry["std"], np.float32)
    onnx_map = session.run(["mask"], {"image": x.transpose(2, 0, 1)[None]})[0][0]
    with torch.no_grad():
        torch_map = port[1].segment(_port_input(rgb)).argmax(1)[0].numpy()
    assert (onnx_map == torch_map).mean() > 0.999
    frames = tmp_path / "frames"
    frames.mkdir()
    for p in sorted((SHARED / "camvid" / "val").glob("*.png"))[:2]:
        cv2.imwrite(str(frames / p.name), cv2.imread(str(p)))
    res = run_cli(
        "run", frames, "--model", "street", "--input-size", "360x480", "--no-show", "--json", tmp_path / "f.jsonl", "--quiet", env=env
    )
    assert res.returncode == 0, res.stderr
    lines = frame_lines(tmp_path / "f.jsonl")
    assert len(lines) == 2 and {"road", "building", "car"} <= set(lines[0]["class_share"])
