"""Google's TF-Slim MobileNetV2 files become rtseg encoders: the arithmetic that makes that exact, and
(with ../shared) agreement with the LiteRT interpreter on real frames."""

import copy
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rtseg.data.camvid import eval_pairs, selection_pairs  # noqa: E402
from rtseg.core.errors import RtsegError  # noqa: E402
from rtseg.models import ModelSpec, build_model  # noqa: E402
from rtseg.models.tflite_mnv2 import (
    TFSamePad,
    _conv_bn_pairs,
    read_slim_tflite,
    set_identity_batchnorm,  # noqa: E402
    unfold_batchnorm,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PRETRAINED = SHARED / "pretrained"


@pytest.mark.parametrize("size", [7, 8, 45, 46, 513])
def test_same_padding_puts_the_odd_pixel_after(size):
    conv = torch.nn.Conv2d(1, 1, 3, stride=2, bias=False)
    torch.nn.init.normal_(conv.weight)
    x = torch.randn(1, 1, size, size)
    ref = conv(torch.nn.functional.pad(x, [0, 1, 0, 1] if size % 2 == 0 else [1, 1, 1, 1]))  # TF's SAME
    assert torch.allclose(TFSamePad(conv)(x), ref, atol=1e-6)


def _slim_model(width=0.5):
    torch.manual_seed(0)
    model = build_model(ModelSpec(width=width, head="lraspp", output_stride=32, input_size=(64, 96), encoder="slim"))
    for conv, bn in _conv_bn_pairs(model.encoder):  # what a folded file gives: weights and a bias, no BN statistics
        set_identity_batchnorm(bn, torch.randn(bn.num_features) * 0.1)
    return model


def test_unfolding_batch_norm_keeps_eval_exact_and_starts_training_at_the_pretrained_network():
    model = _slim_model().encoder.eval()  # the head is freshly initialised either way: compare the backbone
    batch = torch.randn(4, 3, 64, 96)
    with torch.no_grad():
        folded = model(batch)[32]
        identity_train = copy.deepcopy(model).train()(batch)[32]  # identity BN in train mode normalises each channel
        n = unfold_batchnorm(model, [batch])
        unfolded_eval = model.eval()(batch)[32]
        unfolded_train = model.train()(batch)[32]
    assert n == 51
    assert torch.allclose(unfolded_eval, folded, rtol=1e-3, atol=1e-3)
    err = lambda y: float((y - folded).abs().mean() / folded.abs().mean())  # noqa: E731
    assert err(unfolded_train) < 0.01 < err(identity_train)


def test_slim_encoder_has_tf_slim_channels_and_exports_at_any_size(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from rtseg.training.export import export_onnx

    spec = ModelSpec(width=0.5, head="lraspp", output_stride=32, input_size=(64, 96), encoder="slim")
    model = build_model(spec).eval()
    assert model.encoder.channels[4] == 12  # DeepLab's width 0.5: 24 * 0.5, where torchvision rounds to 16
    export_onnx(model, spec, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for h, w in ((64, 96), (72, 104)):  # odd feature sizes inside: the padding is computed per input
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            ref = model(x).argmax(1).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        assert (got == ref).mean() > 0.999


def _camvid_layout(root: Path, frames: dict[str, list[str]]) -> Path:
    import cv2

    for split, names in frames.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for n in names:
            cv2.imwrite(str(root / split / f"{n}.png"), np.zeros((8, 8, 3), np.uint8))
            cv2.imwrite(str(root / f"{split}annot" / f"{n}.png"), np.zeros((8, 8), np.uint8))
    return root


def test_holdout_split_takes_a_whole_drive_out_of_training(tmp_path):
    root = _camvid_layout(tmp_path, {"train": ["0001TP_1", "0006R0_1", "0006R0_2", "0016E5_1"], "val": ["0016E5_9"]})
    train, held, desc = selection_pairs(root, "holdout:0006R0")
    assert sorted(p[0].stem for p in held) == ["0006R0_1", "0006R0_2"]
    assert sorted(p[0].stem for p in train) == ["0001TP_1", "0016E5_1", "0016E5_9"]  # val frames train too
    assert "none in training" in desc
    assert [p[0].stem for p in eval_pairs(root, "holdout:0006R0")] == ["0006R0_1", "0006R0_2"]
    train, held, _ = selection_pairs(root, "val")
    assert [p[0].stem for p in held] == ["0016E5_9"] and len(train) == 4
    with pytest.raises(ValueError, match="drives: 0001TP, 0006R0, 0016E5"):
        selection_pairs(root, "holdout:Seq05VD")
    with pytest.raises(ValueError, match="holdout:DRIVE"):
        selection_pairs(root, "test")


def test_a_file_that_is_not_tflite_is_one_line_error(tmp_path):
    pytest.importorskip("tflite")
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"not a flatbuffer at all" * 10)
    with pytest.raises(RtsegError, match="not a TFLite model|not a TF-Slim MobileNetV2"):
        read_slim_tflite(bad)


def _frames(n_video=4, n_camvid=3):
    import cv2

    cap = cv2.VideoCapture(str(SHARED / "video" / "vtest.avi"))
    frames = []
    for i in range(50 * n_video):
        ok, f = cap.read()
        if ok and i % 50 == 0:
            frames.append(f)
    cap.release()
    camvid = sorted((SHARED / "camvid" / "val").glob("*.png"))
    return frames + [cv2.imread(str(p)) for p in camvid[:: max(1, len(camvid) // n_camvid)][:n_camvid]]


def _litert(path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    it = litert.Interpreter(str(path))
    it.allocate_tensors()
    return it, it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]


def _slim_input(rgb):
    return torch.from_numpy(((rgb.astype(np.float32) - 128) / 128).transpose(2, 0, 1)[None])


@pytest.mark.shared
@pytest.mark.skipif(not PRETRAINED.is_dir(), reason="needs ../shared/data/pretrained")
def test_imagenet_classifier_agrees_with_litert_top5():
    import cv2

    from rtseg.models.tflite_mnv2 import SlimImageNetClassifier

    path = PRETRAINED / "mobilenet_v2_1.0_224_quant.tflite"
    net = SlimImageNetClassifier(read_slim_tflite(path)).eval()
    it, inp, out = _litert(path)
    overlap, top1 = [], []
    for frame in _frames():
        rgb = cv2.cvtColor(cv2.resize(frame, (224, 224), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        it.set_tensor(inp, rgb[None])
        it.invoke()
        ref = it.get_tensor(out)[0].astype(np.float32)
        with torch.no_grad():
            ours = net(_slim_input(rgb))[0].numpy()
        overlap.append(len(set(np.argsort(-ref)[:5]) & set(np.argsort(-ours)[:5])) / 5)
        top1.append(ref.argmax() == ours.argmax())
    assert np.mean(overlap) >= 0.9 and np.mean(top1) >= 0.85, (overlap, top1)


@pytest.mark.shared
@pytest.mark.skipif(not PRETRAINED.is_dir(), reason="needs ../shared/data/pretrained")
@pytest.mark.parametrize("name", ["deeplabv3_mnv2_dm05_pascal_quant.tflite", "deeplabv3_mnv2_pascal_quant.tflite"])
def test_deeplab_voc_class_maps_agree_with_litert(name):
    import cv2

    from rtseg.models.tflite_mnv2 import SlimDeepLabV3

    path = PRETRAINED / name
    net = SlimDeepLabV3(read_slim_tflite(path)).eval()
    it, inp, out = _litert(path)
    agreement = []
    for frame in _frames():
        rgb = cv2.cvtColor(cv2.resize(frame, (513, 513)), cv2.COLOR_BGR2RGB)
        it.set_tensor(inp, rgb[None])
        it.invoke()
        ref = it.get_tensor(out)[0]
        with torch.no_grad():
            ours = net(_slim_input(rgb)).argmax(1)[0].numpy()
        agreement.append((ours == ref).mean())
    assert min(agreement) >= 0.97, agreement


@pytest.mark.shared
@pytest.mark.skipif(not PRETRAINED.is_dir(), reason="needs ../shared/data/pretrained")
def test_a_file_of_another_width_is_refused():
    from rtseg.training.pretrained import load_tflite_backbone

    spec = ModelSpec(width=1.0, head="lraspp", output_stride=32, input_size=(64, 96), encoder="slim")
    with pytest.raises(RtsegError, match="width-0.5 MobileNetV2, the model is width 1"):
        load_tflite_backbone(build_model(spec), spec, f"voc-tflite:{PRETRAINED / 'deeplabv3_mnv2_dm05_pascal_quant.tflite'}", [])
    with pytest.raises(RtsegError, match="ImageNet classifier"):
        load_tflite_backbone(build_model(spec), spec, f"voc-tflite:{PRETRAINED / 'mobilenet_v2_1.0_224_quant.tflite'}", [])
