"""TensorRT path: what CI can check without a GPU (cache keys, validity, backend choice, fallbacks, the INT8
gate's decision), and engine build + agreement with ONNX Runtime on a GPU (marked `gpu`)."""
import dataclasses

import numpy as np
import pytest

from helpers import count_frames, run_cli

from rtseg import backends
from rtseg.backends.choice import Platform, choose_backend, cuda_device_name, resolve_backend
from rtseg.backends.engine_cache import EngineCache, EngineKey, ShapeProfile
from rtseg.training.engine_export import int8_decision
from rtseg.core.errors import RtsegError


def key(**changes) -> EngineKey:
    base = EngineKey("ab" * 32, "NVIDIA H100 80GB HBM3", "9.0", "10.13.0", "fp16", ShapeProfile.fixed((360, 480)))
    return dataclasses.replace(base, **changes)


def test_every_key_field_changes_the_engine_file():
    variants = [key(), key(onnx_sha256="cd" * 32), key(gpu="NVIDIA H200"), key(compute_capability="8.9"),
                key(tensorrt="10.14.1"), key(precision="int8"), key(profile=ShapeProfile((240, 320), (360, 480), (480, 640)))]
    names = {k.filename("m") for k in variants}
    assert len(names) == len(variants)
    assert key().filename("m") == key().filename("m")  # stable across calls and processes (no hash salt)
    assert key().filename("m").startswith("m-fp16-360x480-")


def test_shape_profile_defaults_and_validation():
    assert ShapeProfile.parse(None, None, None, default=(360, 480)) == ShapeProfile.fixed((360, 480))
    p = ShapeProfile.parse((240, 320), (360, 480), (480, 640), default=(360, 480))
    assert p.contains((240, 320)) and p.contains((480, 640)) and not p.contains((200, 320))
    assert p.label() == "240x320-480x640"
    assert ShapeProfile.parse(None, (288, 384), None, default=(360, 480)) == ShapeProfile.fixed((288, 384))
    with pytest.raises(RtsegError, match="min <= opt <= max"):
        ShapeProfile.parse((480, 640), (360, 480), None, default=(360, 480))


def test_cache_round_trip_and_refusals(tmp_path):
    cache = EngineCache(tmp_path)
    assert cache.load(key(), "m") == (None, "no cached engine")
    path = cache.store(key(), "m", b"engine bytes")
    assert path.exists() and cache.load(key(), "m") == (b"engine bytes", "")
    # the record says the engine was built for another GPU (e.g. a cache folder copied between machines)
    record = path.with_suffix(".json")
    record.write_text(record.read_text().replace("NVIDIA H100 80GB HBM3", "NVIDIA H200"))
    data, why = cache.load(key(), "m")
    assert data is None and "built for something else" in why
    cache.store(key(), "m", b"engine bytes")
    # truncated or corrupted engine bytes
    path.write_bytes(b"engine by")
    data, why = cache.load(key(), "m")
    assert data is None and "corrupt" in why
    # record missing
    cache.store(key(), "m", b"engine bytes")
    path.with_suffix(".json").unlink()
    assert "no readable record" in cache.load(key(), "m")[1]
    cache.discard(key(), "m")
    assert not path.exists()


def test_engine_cache_folder_is_overridable(monkeypatch, tmp_path):
    from rtseg.backends.engine_cache import engine_cache_dir

    monkeypatch.setenv("RTSEG_ENGINE_CACHE", str(tmp_path / "e"))
    assert engine_cache_dir() == tmp_path / "e"
    monkeypatch.delenv("RTSEG_ENGINE_CACHE")
    monkeypatch.setenv("RTSEG_CACHE_DIR", str(tmp_path / "c"))
    assert engine_cache_dir() == tmp_path / "c" / "engines"


@pytest.mark.parametrize("platform, expected", [
    (Platform("NVIDIA H100", "10.13.0", ["CUDAExecutionProvider", "CPUExecutionProvider"]), "tensorrt"),
    (Platform("NVIDIA H100", None, ["CUDAExecutionProvider", "CPUExecutionProvider"]), "onnxruntime-cuda"),
    (Platform("NVIDIA H100", None, ["CPUExecutionProvider"]), "onnxruntime"),
    (Platform(None, "10.13.0", ["CUDAExecutionProvider", "CPUExecutionProvider"]), "onnxruntime"),  # no GPU
    (Platform(None, None, ["CPUExecutionProvider"]), "onnxruntime"),
])
def test_auto_backend_choice(platform, expected):
    kind, why = choose_backend(platform)
    assert kind == expected and why
    assert resolve_backend("auto", platform) == (kind, why)
    assert resolve_backend("torch", platform) == ("torch", None)  # an explicit choice is kept, silently


def test_failing_gpu_backend_falls_back_to_cpu_with_a_warning(tiny_model, monkeypatch):
    monkeypatch.setitem(backends._REGISTRY, "tensorrt", "rtseg.core.errors:no_such_factory")

    def broken(*_, **__):
        raise RtsegError("cached engine failed to deserialize")

    import rtseg.core.errors

    monkeypatch.setattr(rtseg.core.errors, "no_such_factory", broken, raising=False)
    warnings = []
    b = backends.load_backend("tensorrt", str(tiny_model), warn=warnings.append)
    assert b.name == "onnxruntime-cpu"
    assert len(warnings) == 1 and "falling back to ONNX Runtime" in warnings[0] and "deserialize" in warnings[0]
    with pytest.raises(RtsegError):
        backends.load_backend("tensorrt", str(tiny_model), fallback=False)


def test_run_with_tensorrt_on_a_machine_without_it_still_runs(tiny_model, clip, tmp_path):
    if cuda_device_name():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "o.mp4"
    res = run_cli("run", clip, "--model", tiny_model, "--backend", "tensorrt", "--no-show", "--output", out, "--quiet")
    assert res.returncode == 0, res.stderr
    assert "falling back to ONNX Runtime" in res.stderr
    assert count_frames(out) == count_frames(clip)


def test_auto_backend_says_what_it_chose(tiny_model, clip):
    res = run_cli("run", clip, "--model", tiny_model, "--no-show")
    assert res.returncode == 0, res.stderr
    assert "rtseg: backend auto:" in res.stderr


def test_engine_export_without_tensorrt_is_one_line(tiny_model):
    if cuda_device_name():
        pytest.skip("this machine has a GPU")
    res = run_cli("export", "--model", tiny_model, "--format", "engine", "--precision", "fp16")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and lines[0].startswith("rtseg: error:"), res.stderr


def test_int8_gate_decision():
    assert int8_decision(0.62, 0.615, 1.0)[0] == "int8"
    chosen, msg = int8_decision(0.62, 0.60, 1.0)
    assert chosen == "fp16" and "FP16 62.00" in msg and "INT8 60.00" in msg and "refused" in msg
    assert int8_decision(0.62, 0.60, 1.0, force=True)[0] == "int8"


def _gpu_ready() -> bool:
    try:
        import tensorrt  # noqa: F401
        import torch
    except Exception:
        return False
    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs an NVIDIA GPU, TensorRT and CUDA PyTorch")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_onnxruntime(tiny_model, tmp_path, precision):
    from rtseg.backends.onnxruntime import OnnxRuntimeBackend
    from rtseg.backends.tensorrt import TensorRTBackend

    x = np.random.default_rng(0).standard_normal((1, 3, 64, 80)).astype(np.float32)
    trt_backend = TensorRTBackend(tiny_model, precision=precision, cache_dir=tmp_path)
    ours = trt_backend.infer(x)["mask"]
    ref = OnnxRuntimeBackend(tiny_model).infer(x)["mask"]
    assert ours.dtype == np.uint8 and (ours == ref).mean() > 0.99
    again = TensorRTBackend(tiny_model, precision=precision, cache_dir=tmp_path)  # from the cache this time
    assert (again.infer(x)["mask"] == ours).all()
