"""Every architecture builds, learns, exports to ONNX, and ONNX Runtime agrees with PyTorch."""

import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import run_cli  # noqa: E402

from rtseg.models.deploy import ExportWrapper
from rtseg.training.export import export_onnx  # noqa: E402
from rtseg.core.manifest import Manifest  # noqa: E402
from rtseg.core.modelinfo import MANIFEST, sha256  # noqa: E402
from rtseg.models import ModelSpec, build_model, parse_size  # noqa: E402

SPECS = [
    ModelSpec(width=0.35, head="lraspp", output_stride=32, input_size=(64, 96)),
    ModelSpec(width=0.35, head="deeplabv3plus", output_stride=16, input_size=(64, 96)),
    ModelSpec(width=0.5, head="deeplabv3plus", output_stride=32, input_size=(64, 96)),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_learns_a_tiny_batch(spec):
    torch.manual_seed(0)
    model = build_model(spec).train()
    x = torch.randn(2, 3, *spec.input_size)
    y = (x[:, 0] > 0).long() * 3  # a learnable pattern: Road where the red channel is bright
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_onnx_runtime_matches_pytorch_at_two_sizes(spec, tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    model = build_model(spec).eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, spec, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in [spec.input_size, (96, 128)]:  # dynamic height/width
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            ref = ExportWrapper(model)(x)[0].numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        assert got.shape == ref.shape == (1, *size) and got.dtype == np.uint8
        # untrained logits have near-ties; argmax may flip on a rare pixel from float reordering
        assert (got == ref).mean() > 0.99


def test_a_session_fixed_to_one_shape_gives_the_same_map_and_refuses_others(tmp_path):
    from rtseg.backends.onnxruntime import OnnxRuntimeBackend, fixed_dims
    from rtseg.core.errors import RtsegError
    from rtseg.core.modelinfo import resolve_model
    from rtseg.runtime.slot import load_slot

    spec = SPECS[1]
    torch.manual_seed(0)
    path = tmp_path / "m.onnx"
    export_onnx(build_model(spec).eval(), spec, path)
    free = OnnxRuntimeBackend(path, threads=1)
    fixed = OnnxRuntimeBackend(path, threads=1, fixed_size=(80, 112))
    assert free.static_size() is None and fixed.static_size() == (80, 112)
    x = np.random.default_rng(0).standard_normal((1, 3, 80, 112)).astype(np.float32)
    assert np.array_equal(free.infer(x)["mask"], fixed.infer(x)["mask"])
    other = np.zeros((1, 3, 64, 96), np.float32)
    assert free.infer(other)["mask"].shape == (1, 64, 96)
    with pytest.raises(RtsegError, match="inference failed"):
        fixed.infer(other)
    # a pipeline's slot loads its session for the one size it feeds it
    slot = load_slot(resolve_model(str(path)), input_size=(96, 128))
    assert slot.backend.static_size() == (96, 128)
    slot.backend.close()
    # what is fixed: the named free dimensions, and nothing when one name would need two values
    assert fixed_dims(["batch", 3, "height", "width"], (80, 112)) == {"batch": 1, "height": 80, "width": 112}
    assert fixed_dims([1, 3, 80, "w"], (80, 112)) == {"w": 112}
    assert fixed_dims(["n", 3, "s", "s"], (80, 112)) == {}
    assert fixed_dims(["n", 3, "s", "s"], (96, 96)) == {"n": 1, "s": 96}
    assert fixed_dims([None, 3, "h", "w"], (80, 112)) == {}
    assert fixed_dims(["n", "c", "h", "w"], (80, 112)) == {"n": 1, "c": 3, "h": 80, "w": 112}
    assert fixed_dims(["N", "?", "?", "?"], (96, 96)) == {}  # channels and size under one name


def test_output_stride_and_sizes():
    assert parse_size("360x480") == (360, 480)
    with pytest.raises(ValueError):
        parse_size("360x481")
    with pytest.raises(ValueError):
        build_model(ModelSpec(output_stride=8))


@pytest.fixture
def tiny_camvid(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        (tmp_path / split).mkdir()
        (tmp_path / f"{split}annot").mkdir()
        for i in range(n):
            label = np.zeros((64, 96), np.uint8)
            label[32:] = 3
            label[:, 48:60] = 8
            img = np.where(label[..., None] == 3, 80, 200).astype(np.uint8).repeat(3, 2) + rng.integers(0, 20, (64, 96, 3), np.uint8)
            cv2.imwrite(str(tmp_path / split / f"f{i}.png"), img)
            cv2.imwrite(str(tmp_path / f"{split}annot" / f"f{i}.png"), label)
    return tmp_path


def test_train_export_eval_round_trip(tiny_camvid, tmp_path):
    run = tmp_path / "run"
    res = run_cli(
        "train",
        "--data",
        tiny_camvid,
        *"--width 0.35 --head lraspp --output-stride 32 --input-size 64x96 --epochs 2 --batch-size 2 --warmup-epochs 0.5 --out".split(),
        run,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    rows = (run / "log.csv").read_text().splitlines()
    assert len(rows) == 3 and (run / "best.pt").exists()
    # resuming a finished run is a no-op that keeps the log
    res = run_cli(
        "train",
        "--data",
        tiny_camvid,
        *"--width 0.35 --head lraspp --output-stride 32 --input-size 64x96 --epochs 2 --batch-size 2 --out".split(),
        run,
        "--resume",
        timeout=300,
    )
    assert res.returncode == 0 and "resumed" in res.stdout
    assert (run / "log.csv").read_text().splitlines() == rows

    manifest = tmp_path / "engines" / "manifest.json"
    res = run_cli("export", "--checkpoint", run / "best.pt", "--out-dir", tmp_path / "engines", "--manifest", manifest, "--name", "tiny")
    assert res.returncode == 0, res.stderr[-2000:]
    entry = json.loads(manifest.read_text())["models"][0]
    onnx_path = tmp_path / "engines" / "tiny.onnx"
    assert entry["sha256"] == sha256(onnx_path)
    assert entry["params"] > 0 and entry["gflops"] > 0 and entry["input_size"] == [64, 96]
    assert entry["training"]["epochs"] == 2 and "rtseg train" in entry["training"]["command"]

    res = run_cli("eval", "--model", onnx_path, "--data", tiny_camvid, "--json", tmp_path / "r.json", "--quiet")
    assert res.returncode == 0, res.stderr
    assert 0.0 <= json.loads((tmp_path / "r.json").read_text())["miou"] <= 1.0

    # fine-tuning from the shipped weights at another size: the manifest names the parent and adds its time
    ft = tmp_path / "ft"
    res = run_cli(
        "train",
        "--data",
        tiny_camvid,
        *"--width 0.35 --head lraspp --output-stride 32 --input-size 96x128 --epochs 1 --batch-size 2".split(),
        *"--warmup-epochs 0.5 --pretrained".split(),
        tmp_path / "engines" / "tiny.pt",
        "--out",
        ft,
        timeout=300,
    )
    assert res.returncode == 0 and "(0 not in the file, 0 of another shape; 0 unused)" in res.stdout, res.stderr[-2000:]
    res = run_cli("export", "--checkpoint", ft / "best.pt", "--out-dir", tmp_path / "engines", "--manifest", manifest, "--name", "tiny-ft")
    assert res.returncode == 0, res.stderr[-2000:]
    training = next(m for m in json.loads(manifest.read_text())["models"] if m["name"] == "tiny-ft")["training"]
    assert training["initialized_from"]["model"] == "tiny" and training["initialized_from"]["epochs"] == 2
    assert training["initialized_from"]["sha256"] == sha256(tmp_path / "engines" / "tiny.pt")
    assert "total_wall_hours" in training and "pretrained-sha256" not in training["command"]


def test_a_run_starts_from_another_runs_best_and_the_chain_is_recorded(tiny_camvid, tmp_path):
    common = (
        "--data",
        tiny_camvid,
        *"--width 0.35 --head lraspp --output-stride 32 --input-size 64x96 --epochs 1 --batch-size 2".split(),
        *"--warmup-epochs 0.5 --val-split val".split(),
    )
    res = run_cli("train", *common, "--out", tmp_path / "a", timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    # best.pt holds plain values only, so it loads as weights (no pickled code) to start the next run
    res = run_cli("train", *common, "--pretrained", tmp_path / "a" / "best.pt", "--out", tmp_path / "b", timeout=300)
    assert res.returncode == 0 and "loaded" in res.stdout, res.stderr[-2000:]
    manifest = tmp_path / "engines" / "manifest.json"
    res = run_cli(
        "export", "--checkpoint", tmp_path / "b" / "best.pt", "--out-dir", tmp_path / "engines", "--manifest", manifest, "--name", "b"
    )
    assert res.returncode == 0, res.stderr[-2000:]
    training = json.loads(manifest.read_text())["models"][0]["training"]
    assert training["val_split"] == "val" and training["initialized_from"]["run"]["epochs"] == 1
    assert training["total_wall_hours"] >= training["wall_hours"]


def test_parent_record_chains_ancestors_and_checks_the_file(tmp_path):
    from rtseg.training.export import _record_parent

    (tmp_path / "b.pt").write_bytes(b"weights of b")
    manifest = Manifest(
        tmp_path / "manifest.json",
        models=[{"name": "b", "weights": "b.pt", "training": {"epochs": 40, "wall_hours": 0.5, "total_wall_hours": 1.5}}],
    )
    training = {"wall_hours": 0.25}
    _record_parent(training, {"pretrained": "engines/b.pt", "pretrained_sha256": sha256(tmp_path / "b.pt")}, manifest)
    assert training["initialized_from"]["model"] == "b" and training["total_wall_hours"] == 1.75  # b's parent too
    (tmp_path / "b.pt").write_bytes(b"b re-shipped after the child trained")
    training = {"wall_hours": 0.25}
    _record_parent(training, {"pretrained": "engines/b.pt", "pretrained_sha256": "0" * 64}, manifest)
    assert "model" not in training["initialized_from"] and "total_wall_hours" not in training
    training = {"wall_hours": 0.25}
    _record_parent(training, {"pretrained": None}, manifest)
    assert training == {"wall_hours": 0.25}


def test_load_matching_shares_the_encoder_and_refuses_another_width(capsys):
    from rtseg.core.errors import RtsegError
    from rtseg.models import ModelSpec, build_model
    from rtseg.training.pretrained import load_matching

    seg = build_model(ModelSpec(width=0.5, head="lraspp", output_stride=32, input_size=(64, 96)))
    segdet = build_model(ModelSpec(width=0.5, head="lraspp", output_stride=32, input_size=(64, 96), task="segdet"))
    load_matching(segdet, seg.state_dict(), "seg.pt")  # encoder and seg head load, the box head starts fresh
    assert all(torch.equal(segdet.state_dict()[k], v) for k, v in seg.state_dict().items())
    fresh = len([k for k in segdet.state_dict() if k.startswith("det_head.")])
    assert f"({fresh} not in the file, 0 of another shape; 0 unused)" in capsys.readouterr().out
    narrow = build_model(ModelSpec(width=0.35, head="lraspp", output_stride=32, input_size=(64, 96)))
    with pytest.raises(RtsegError, match="encoder weights match"):  # a few early tensors coincide: not enough
        load_matching(narrow, seg.state_dict(), "w050.pt")


def test_pretrained_file_of_another_width_fails_clearly(tiny_camvid, tmp_path):
    import torch

    from rtseg.models import ModelSpec, build_model

    other = tmp_path / "w10.pt"
    torch.save({"model": build_model(ModelSpec(width=1.0, head="deeplabv3plus")).state_dict()}, other)
    res = run_cli(
        "train",
        "--data",
        tiny_camvid,
        *"--width 0.35 --head lraspp --input-size 64x96 --epochs 1 --pretrained".split(),
        other,
        "--out",
        tmp_path / "r",
        timeout=300,
    )
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith("rtseg: error: --pretrained")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    res = run_cli(
        "train",
        "--data",
        tiny_camvid,
        *"--input-size 64x96 --epochs 1 --pretrained".split(),
        tmp_path / "junk.pt",
        "--out",
        tmp_path / "r2",
        timeout=300,
    )
    assert res.returncode == 1 and "not a readable PyTorch state dict" in res.stderr


def test_pretrained_imagenet_fails_clearly_offline(tiny_camvid, tmp_path, monkeypatch):
    # no internet here: the download must fail with one clear line, not a traceback
    res = run_cli(
        "train",
        "--data",
        tiny_camvid,
        *"--width 1.0 --pretrained imagenet --input-size 64x96 --epochs 1 --out".split(),
        tmp_path / "r",
        timeout=300,
        env={**__import__("os").environ, "TORCH_HOME": str(tmp_path / "th"), "https_proxy": "http://127.0.0.1:9"},
    )
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith("rtseg: error: could not download")


def test_shipped_manifest_matches_its_files():
    manifest = Manifest.load()
    if not manifest.models:
        pytest.skip("no shipped models")
    names = [m["name"] for m in manifest.models]
    assert manifest.default in names and len(set(names)) == len(names)
    for m in manifest.models:
        path = MANIFEST.parent / m["file"]
        assert path.exists(), path
        assert sha256(path) == m["sha256"], f"{path} changed since export: re-export and re-eval"
        # measured on the split that selected it: CamVid val, or the drive held out of its training
        split = m.get("training", {}).get("val_split", "val")
        assert f"camvid_{split}" in m["metrics"], f"{m['name']} has no accuracy measured on {split}"


def test_rtseg_train_offers_every_registered_head_and_encoder():
    # the parser stays free of PyTorch (the runtime install has none), so its choices are written out: this
    # keeps them equal to what the models' registries can build
    import argparse

    from rtseg.models import NETWORKS
    from rtseg.models.segmentation import SEG_HEADS
    from rtseg.training.train_args import add_train_args

    p = argparse.ArgumentParser()
    add_train_args(p)
    choices = {a.dest: set(a.choices or ()) for a in p._actions}
    assert choices["head"] == set(SEG_HEADS) | {"aspplite"}  # aspplite: the EdgeTPU network's own head
    assert choices["encoder"] == set(NETWORKS)
