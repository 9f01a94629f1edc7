"""TensorRT path. Without a GPU: cache keys and validity, backend choice, fallbacks, the INT8 gate's decision,
the install's TensorRT / cuda-bindings pairing, and, on a strict stand-in for TensorRT 11.4 / 10.0 and
cuda-python (tests/trt_standin), the backend end to end: strongly typed builds from FP32 / FP16 / Q/DQ ONNX
that keep TensorRT's type rules, one logger, one context per thread, one build across processes, every failure
one line. On a GPU (marked `gpu`): a real engine agrees with ONNX Runtime (INT8: tests/test_tensorrt_precision.py)."""

import dataclasses
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from helpers import NUM_CLASSES, class_frame, count_frames, run_cli
from trt_standin import VERSIONS, install
from trt_standin import tensorrt_sim

from rtseg import backends
from rtseg.backends.choice import Platform, choose_backend, cuda_device_name, probe_platform, resolve_backend
from rtseg.backends.engine_cache import BuildSettings, EngineCache, EngineKey, ShapeProfile
from rtseg.core.constants import IMAGENET_MEAN, IMAGENET_STD
from rtseg.core.errors import RtsegError
from rtseg.core.modelinfo import ModelInfo, resolve_model
from rtseg.runtime.preprocess import Preprocessor
from rtseg.backends.qdq import check_symmetric_qdq
from rtseg.training.engine_export import int8_decision

TESTS = Path(__file__).parent
ENGINES = TESTS.parent / "engines"


def key(**changes) -> EngineKey:
    base = EngineKey(
        "ab" * 32,
        "NVIDIA H100 80GB HBM3",
        "9.0",
        "10.13.0",
        "fp16",
        ShapeProfile.fixed((360, 480)),
        BuildSettings(strongly_typed=True, optimization_level=3, workspace_bytes=4 << 30),
    )
    return dataclasses.replace(base, **changes)


# -- the cache -----------------------------------------------------------------------------------------
def test_every_key_field_changes_the_engine_file():
    variants = [
        key(),
        key(onnx_sha256="cd" * 32),
        key(gpu="NVIDIA H200"),
        key(compute_capability="8.9"),
        key(tensorrt="10.14.1"),
        key(precision="int8"),
        key(profile=ShapeProfile((240, 320), (360, 480), (480, 640))),
        key(settings=BuildSettings(optimization_level=5)),
        key(settings=BuildSettings(workspace_bytes=1 << 30)),
        key(settings=BuildSettings(strongly_typed=False)),
    ]
    names = {k.filename("m") for k in variants}
    assert len(names) == len(variants)
    # stable across processes (no hash salt): the same key's name worked out in processes with other hash seeds
    here = key().filename("m")
    for seed in ("1", "2"):
        made = subprocess.run(
            [sys.executable, "-c", ELSEWHERE],
            input=pickle.dumps(key()),
            capture_output=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert made.returncode == 0, made.stderr.decode()
        assert made.stdout.decode().strip() == here, (seed, made.stdout, here)
    assert re.fullmatch(r"m-fp16-360x480-[0-9a-f]{16}\.engine", here)


# a key made afresh (pickled: nothing worked out in this process travels with it) names its file in another process
ELSEWHERE = "import pickle, sys; print(pickle.load(sys.stdin.buffer).filename('m'))"


def test_shape_profile_defaults_and_validation():
    assert ShapeProfile.parse(None, None, None, default=(360, 480)) == ShapeProfile.fixed((360, 480))
    p = ShapeProfile.parse((240, 320), (360, 480), (480, 640), default=(360, 480))
    assert p.contains((240, 320)) and p.contains((480, 640)) and not p.contains((200, 320))
    assert p.label() == "240x320-480x640"
    assert ShapeProfile.parse(None, (288, 384), None, default=(360, 480)) == ShapeProfile.fixed((288, 384))
    with pytest.raises(RtsegError, match="min <= opt <= max"):
        ShapeProfile.parse((480, 640), (360, 480), None, default=(360, 480))
    # per dimension: a tall and a wide size make a profile holding both
    assert ShapeProfile.covering([(480, 320), (240, 640)], (360, 480)) == ShapeProfile((240, 320), (360, 480), (480, 640))


def test_cache_round_trip_and_refusals(tmp_path):
    cache = EngineCache(tmp_path)
    assert cache.load(key(), "m") == (None, "no cached engine")
    path = cache.store(key(), "m", b"engine bytes")
    assert path.exists() and cache.load(key(), "m") == (b"engine bytes", "")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # one file per key: header and engine together
    # the header says the engine was built for another GPU (e.g. a cache folder copied between machines)
    path.write_bytes(path.read_bytes().replace(b"NVIDIA H100 80GB HBM3", b"NVIDIA H200"))
    data, why = cache.load(key(), "m")
    assert data is None and "built for something else" in why
    cache.store(key(), "m", b"engine bytes")
    # truncated or corrupted engine bytes
    path.write_bytes(path.read_bytes()[:-3])
    data, why = cache.load(key(), "m")
    assert data is None and "corrupt" in why
    # no header (an engine file written by something else)
    path.write_bytes(b"engine bytes")
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


def test_get_or_build_builds_once_and_replaces_an_engine_that_does_not_load(tmp_path):
    cache, builds = EngineCache(tmp_path), []

    def build():
        builds.append(1)
        return b"good engine"

    assert cache.get_or_build(key(), "m", build) == (b"good engine", True)
    assert cache.get_or_build(key(), "m", build) == (b"good engine", False) and len(builds) == 1
    cache.store(key(), "m", b"plan of another TensorRT")  # checksum fine, but TensorRT will not load it
    loads = lambda data: data == b"good engine"  # noqa: E731
    assert cache.get_or_build(key(), "m", build, loads) == (b"good engine", True) and len(builds) == 2
    assert cache.load(key(), "m")[0] == b"good engine"  # replaced, not deleted


def test_cache_files_are_readable_like_ordinary_files_and_stale_temporaries_go(tmp_path):
    import time

    from rtseg.backends import engine_cache

    cache = EngineCache(tmp_path)
    path = cache.path(key(), "m")
    stale, fresh = tmp_path / f".{path.name}.dead.tmp", tmp_path / f".{path.name}.writing.tmp"
    for tmp in (stale, fresh):
        tmp.write_bytes(b"half an engine")
    old = time.time() - engine_cache.STALE_TMP_S - 60
    os.utime(stale, (old, old))
    cache.store(key(), "m", b"engine bytes")
    # mkstemp alone would make it 0600: other users of a shared cache folder could not read the engine
    assert path.stat().st_mode & 0o777 == 0o666 & ~engine_cache._umask()
    assert not stale.exists() and fresh.exists()  # a killed writer's file goes; one being written stays


def test_a_cache_folder_without_locks_still_works_with_a_warning(tmp_path, monkeypatch, caplog):
    import errno

    from rtseg.backends import engine_cache

    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(engine_cache.fcntl, "flock", no_locks)
    data, built = EngineCache(tmp_path).get_or_build(key(), "m", lambda: b"engine")
    assert (data, built) == (b"engine", True) and "cannot be locked" in caplog.text


# -- choosing a backend --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "platform, expected",
    [
        (Platform("NVIDIA H100", "10.13.0", ["CUDAExecutionProvider", "CPUExecutionProvider"]), "tensorrt"),
        (Platform("NVIDIA H100", None, ["CUDAExecutionProvider", "CPUExecutionProvider"]), "onnxruntime-cuda"),
        (Platform("NVIDIA H100", None, ["CPUExecutionProvider"]), "onnxruntime"),
        (Platform(None, "10.13.0", ["CUDAExecutionProvider", "CPUExecutionProvider"]), "onnxruntime"),  # no GPU
        (Platform(None, None, ["CPUExecutionProvider"]), "onnxruntime"),
        (Platform("NVIDIA H100", None, ["CUDAExecutionProvider"], "TensorRT 8.6.1 is not supported"), "onnxruntime-cuda"),
    ],
)
def test_auto_backend_choice(platform, expected):
    kind, why = choose_backend(platform)
    assert kind == expected and why
    assert resolve_backend("auto", platform) == (kind, why)
    assert resolve_backend("torch", platform) == ("torch", None)  # an explicit choice is kept, silently
    if platform.tensorrt_problem:
        assert platform.tensorrt_problem in why  # the user learns why the installed TensorRT was passed over


def test_auto_picks_tensorrt_only_after_a_real_probe(monkeypatch):
    import rtseg.backends.choice as choice

    standin = install(monkeypatch)
    monkeypatch.setattr(choice, "cuda_device_name", lambda: "NVIDIA Stand-In GPU")
    assert probe_platform().tensorrt == "11.4.0.106"
    standin.machine.driver_ok = False  # importable, but the CUDA bindings cannot reach the GPU
    platform = probe_platform()
    assert platform.tensorrt is None and "CUDA device query failed" in platform.tensorrt_problem
    standin.machine.driver_ok = True
    monkeypatch.setattr(standin.tensorrt, "__version__", "8.6.1")
    assert "not supported" in probe_platform().tensorrt_problem
    monkeypatch.setattr(choice, "cuda_device_name", lambda: None)
    assert probe_platform().tensorrt is None  # no GPU: TensorRT is not even probed


def test_auto_passes_over_tensorrt_without_what_building_needs(monkeypatch):
    import rtseg.backends.choice as choice

    install(monkeypatch)
    monkeypatch.setattr(choice, "cuda_device_name", lambda: "NVIDIA Stand-In GPU")
    monkeypatch.setitem(sys.modules, "onnxconverter_common", None)  # an FP16 engine could not be made
    platform = probe_platform()
    assert platform.tensorrt is None and "onnxconverter_common" in platform.tensorrt_problem
    assert choose_backend(Platform(platform.gpu, None, ["CUDAExecutionProvider"], platform.tensorrt_problem))[0] == "onnxruntime-cuda"


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


# -- the stand-in itself -------------------------------------------------------------------------------
def test_standin_refuses_what_tensorrt_11_removed(monkeypatch):
    trt = install(monkeypatch).tensorrt
    removed = [
        lambda: trt.BuilderFlag.FP16,
        lambda: trt.BuilderFlag.INT8,
        lambda: trt.IInt8EntropyCalibrator2,
        lambda: trt.IBuilderConfig().int8_calibrator,
        lambda: trt.IBuilderConfig().set_calibration_profile,
        lambda: trt.Builder(None).platform_has_fast_fp16,
        lambda: trt.ICudaEngine.device_memory_size,
    ]
    for access in removed:
        with pytest.raises(AttributeError):
            access()
    assert not hasattr(trt.BuilderFlag, "FP16") and hasattr(trt.BuilderFlag, "TF32")
    with pytest.raises(NotImplementedError):  # real, but not simulated: the stand-in says so
        trt.Builder(None).build_engine_with_config


def argmax_to_uint8(via: int | None):
    """Logits -> ArgMax -> [Cast(via)] -> Cast(UINT8): the end of every shipped segmentation graph, as bytes."""
    import onnx
    from onnx import TensorProto, helper

    casts = [helper.make_node("Cast", ["idx"], ["mid"], to=via)] if via is not None else []
    nodes = [
        helper.make_node("ArgMax", ["logits"], ["idx"], axis=1, keepdims=0),
        *casts,
        helper.make_node("Cast", ["mid" if casts else "idx"], ["mask"], to=TensorProto.UINT8),
    ]
    graph = helper.make_graph(
        nodes,
        "end",
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 2, 2])],
        [helper.make_tensor_value_info("mask", TensorProto.UINT8, [1, 2, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def parse(trt, onnx_bytes: bytes) -> tuple[bool, str]:
    """Whether (the stand-in's) TensorRT parses the ONNX, and its errors."""
    parser = trt.OnnxParser(trt.Builder(None).create_network(0), None)
    ok = parser.parse(onnx_bytes)
    return ok, "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))


@pytest.mark.parametrize("version", VERSIONS)
def test_standin_parses_casts_to_uint8_only_from_a_float(version, monkeypatch):
    """The one conversion to uint8 that every TensorRT document allows (DataType.UINT8, IIdentityLayer, the
    ONNX parser's Cast import) is from FP32/FP16; ArgMax's indices are INT64, so a graph casting them straight
    to uint8 relies on the Cast operator page alone, and the stand-in refuses it."""
    from onnx import TensorProto

    trt = install(monkeypatch, version).tensorrt
    for via in (None, TensorProto.INT32):  # INT64 -> UINT8, INT32 -> UINT8
        ok, errors = parse(trt, argmax_to_uint8(via))
        assert not ok and "UINT8 converts only to and from FLOAT or HALF" in errors
    for via in (TensorProto.FLOAT, TensorProto.FLOAT16):
        assert parse(trt, argmax_to_uint8(via)) == (True, "")


SHIPPED = [p for p in sorted(ENGINES.glob("*.onnx")) if not p.stem.endswith("-int8")]  # the FP32 models


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_model_as_tensorrt_gets_it_keeps_tensorrts_type_rules(path, monkeypatch):
    """What each shipped model's engines are built from (the FP32 graph, its FP16 conversion) parses under
    TensorRT's type rules, with its outputs of the types the rest of rtseg reads; the file as shipped ends in
    an INT64 -> UINT8 cast where it has a mask."""
    pytest.importorskip("onnxconverter_common")
    import onnx

    from rtseg.backends.tensorrt import engine_source

    trt = install(monkeypatch).tensorrt
    shipped = onnx.load(str(path))
    outputs = [(o.name, o.type.tensor_type.elem_type) for o in shipped.graph.output]
    ok, errors = parse(trt, path.read_bytes())
    assert ok == ("mask" not in dict(outputs)), errors
    for precision in ("fp32", "fp16"):
        source = engine_source(resolve_model(str(path)), precision)
        assert parse(trt, source.onnx) == (True, ""), precision
        graph = onnx.load_from_string(source.onnx).graph
        assert [(o.name, o.type.tensor_type.elem_type) for o in graph.output] == outputs, precision
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


# -- the backend on the stand-in -----------------------------------------------------------------------
@pytest.fixture(params=VERSIONS)
def standin(request, monkeypatch):
    """The stand-in for each TensorRT API the backend supports (11.4, 10.0)."""
    return install(monkeypatch, request.param)


def model_input(k: int, size=(64, 80)) -> np.ndarray:
    """What the pipeline feeds the nearest-centre model for a frame of class k."""
    return Preprocessor(size, IMAGENET_MEAN, IMAGENET_STD, pool_size=1)(class_frame(k, size))


def tiny_info(path: Path) -> ModelInfo:
    return ModelInfo(name="tiny", path=Path(path), input_size=(64, 80))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_strongly_typed_engine_gives_the_models_answer_and_is_cached(standin, tiny_model, tmp_path, precision):
    if precision == "fp16":
        pytest.importorskip("onnxconverter_common")
    from rtseg.backends.tensorrt import TensorRTBackend

    backend = TensorRTBackend(tiny_model, precision=precision, cache_dir=tmp_path)
    for k in (3, 7):
        assert (backend.infer(model_input(k))["mask"] == k).all()
    built = standin.stats.builds[-1]
    assert built["strongly_typed"]  # precision from the file, never from builder flags
    assert built["fp16_weights"] == (precision == "fp16") and built["input"] == ["image", "FLOAT"]
    assert backend.name == f"tensorrt-{precision}" and backend.static_size() == (64, 80)
    backend.close()
    assert standin.machine.leaks() == {"device": 0, "pinned": 0, "streams": 0}
    again = TensorRTBackend(tiny_model, precision=precision, cache_dir=tmp_path)
    assert len(standin.stats.builds) == 1 and (again.infer(model_input(5))["mask"] == 5).all()
    again.close()


def qdq_model(path: Path, zero_point: int | None = 0, zp_type: int = 3, quantized_bias: bool = False) -> Path:
    """The nearest-centre model, explicitly quantized: int8 per-channel weights, a per-tensor Q/DQ pair on
    the image, float bias, symmetric: what TensorRT takes (arguments make it what it does not; `zero_point`
    None leaves the image's Q/DQ pair without one)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from helpers import nearest_centre_onnx

    fp32 = onnx.load(str(nearest_centre_onnx(path.with_name("fp32-" + path.name))))
    w = numpy_helper.to_array(next(t for t in fp32.graph.initializer if t.name == "W"))
    b = numpy_helper.to_array(next(t for t in fp32.graph.initializer if t.name == "B"))
    w_scale = np.maximum(np.abs(w).reshape(len(w), -1).max(1), 1e-6) / 127
    w_q = np.round(w / w_scale[:, None, None, None]).astype(np.int8)
    zp_np = {3: np.int8, 2: np.uint8}[zp_type]
    inits = [
        numpy_helper.from_array(w_q, "Wq"),
        numpy_helper.from_array(w_scale.astype(np.float32), "Ws"),
        numpy_helper.from_array(np.zeros(len(w), np.int8), "Wz"),
        numpy_helper.from_array(np.array(4.0 / 127, np.float32), "Xs"),
    ]
    x_zero = [] if zero_point is None else ["Xz"]
    if zero_point is not None:
        inits.append(numpy_helper.from_array(np.array(zero_point, zp_np), "Xz"))
    nodes = [
        helper.make_node("DequantizeLinear", ["Wq", "Ws", "Wz"], ["W"], axis=0),
        helper.make_node("QuantizeLinear", ["image", "Xs", *x_zero], ["xq"], name="image_Q"),
        helper.make_node("DequantizeLinear", ["xq", "Xs", *x_zero], ["x"], name="image_DQ"),
    ]
    if quantized_bias:
        bias_scale = (4.0 / 127) * w_scale
        inits += [
            numpy_helper.from_array(np.round(b / bias_scale).astype(np.int32), "Bq"),
            numpy_helper.from_array(bias_scale.astype(np.float32), "Bs"),
        ]
        nodes.append(helper.make_node("DequantizeLinear", ["Bq", "Bs"], ["B"], axis=0, name="bias_DQ"))
    else:
        inits.append(numpy_helper.from_array(b, "B"))
    nodes += [
        helper.make_node("Conv", ["x", "W", "B"], ["logits"]),
        helper.make_node("ArgMax", ["logits"], ["idx"], axis=1, keepdims=0),
        helper.make_node("Cast", ["idx"], ["mask"], to=TensorProto.UINT8),
    ]
    graph = helper.make_graph(nodes, "nearest_centre_qdq", list(fp32.graph.input), list(fp32.graph.output), inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_symmetric_qdq_rules(tmp_path):
    import onnx

    def problems(**kwargs):
        return " | ".join(check_symmetric_qdq(onnx.load(str(qdq_model(tmp_path / "q.onnx", **kwargs)))))

    assert problems() == ""
    # no zero point: uint8 to ONNX, but TensorRT's parser quantizes to INT8 ("TRT will default to INT8")
    assert problems(zero_point=None) == ""
    assert "uint8" in problems(zp_type=2)
    assert "non-zero zero point" in problems(zero_point=3)
    assert "bias quantized" in problems(quantized_bias=True) and "int32" in problems(quantized_bias=True)
    fp32 = onnx.load(str(ENGINES / "mnv2-050-lraspp-os32-240x320-voc-kd.onnx"))
    assert "not an explicitly quantized" in " ".join(check_symmetric_qdq(fp32))
    # today's shipped INT8 files (ONNX Runtime's default QDQ: uint8 activations, int32 biases) are refused
    shipped = " | ".join(check_symmetric_qdq(onnx.load(str(ENGINES / "mnv2-100-dlv3p-os16-288x384-voc-int8.onnx"))))
    assert "uint8" in shipped and "bias quantized" in shipped


def test_int8_engine_is_built_from_the_qdq_file_and_an_asymmetric_one_is_refused(standin, tmp_path):
    from rtseg.backends.tensorrt import TensorRTBackend

    good = qdq_model(tmp_path / "good.onnx")
    backend = TensorRTBackend(good, precision="int8", cache_dir=tmp_path, info=tiny_info(good))
    built = standin.stats.builds[-1]
    assert backend.name == "tensorrt-int8" and built["qdq"]
    assert built["fp16_weights"] and built["input"] == ["image", "FLOAT"]  # unquantized layers FP16, I/O as before
    assert (backend.infer(model_input(6))["mask"] == 6).all()
    backend.close()
    bad = qdq_model(tmp_path / "bad.onnx", zp_type=2, zero_point=128)
    with pytest.raises(RtsegError) as e:
        TensorRTBackend(bad, precision="int8", cache_dir=tmp_path, info=tiny_info(bad))
    assert "\n" not in str(e.value) and "uint8" in str(e.value) and len(standin.stats.builds) == 1
    # no zero point: built (TensorRT reads it as INT8; ONNX Runtime, running the stand-in, reads uint8, so the
    # mask is not compared here)
    no_zero = qdq_model(tmp_path / "no-zero.onnx", zero_point=None)
    TensorRTBackend(no_zero, precision="int8", cache_dir=tmp_path, info=tiny_info(no_zero)).close()
    assert len(standin.stats.builds) == 2 and standin.stats.builds[-1]["qdq"]


def test_a_cpu_int8_file_runs_on_tensorrt_as_its_fp32_base(standin, tmp_path):
    """The shipped default may be INT8 laid out for ONNX Runtime's CPU kernels; at fp16/fp32 TensorRT builds
    from the FP32 model it was quantized from instead of refusing the file."""
    from rtseg.backends.tensorrt import engine_source

    info = resolve_model("mnv2-100-dlv3p-os16-288x384-voc-int8")
    assert info.entry.get("qdq", "cpu") == "cpu"  # files from before the layouts were named are CPU ones
    src = engine_source(info, "fp16")
    assert src.model_name == info.entry["base_model"] and src.precision == "fp16"
    with pytest.raises(RtsegError, match="uint8"):  # INT8 asked for: that file, refused until symmetric
        engine_source(info, "int8")


def test_int8_of_an_fp32_model_is_its_int8_sibling_and_says_what_to_do_without_one(standin, tiny_model, tmp_path):
    from rtseg.backends.tensorrt import TensorRTBackend

    info = resolve_model("mnv2-100-dlv3p-os16-288x384-voc")
    with pytest.raises(RtsegError) as e:  # the shipped sibling is found, and refused until it is symmetric
        TensorRTBackend(info.path, precision="int8", cache_dir=tmp_path, info=info)
    assert "mnv2-100-dlv3p-os16-288x384-voc-int8" in str(e.value) and "uint8" in str(e.value)
    with pytest.raises(RtsegError, match=r"no INT8 model of tiny.*--precision int8"):
        TensorRTBackend(tiny_model, precision="int8", cache_dir=tmp_path, info=tiny_info(tiny_model))
    assert not standin.stats.builds


def test_exported_engine_is_the_one_a_run_finds(standin, tmp_path):
    from rtseg.backends.tensorrt import TensorRTBackend
    from rtseg.training.engine_export import EngineRequest, export_engine

    result = export_engine(EngineRequest("mnv2-050-lraspp-os32-240x320-voc-kd", "fp32", cache_dir=str(tmp_path)))
    assert result["profile"] == "192x256-240x320" and Path(result["engine"]).exists()  # its own size and 192x256
    info = resolve_model("mnv2-050-lraspp-os32-240x320-voc-kd")
    TensorRTBackend(info.path, precision="fp32", cache_dir=tmp_path, info=info).close()
    assert len(standin.stats.builds) == 1


def test_profile_covers_every_size_the_selector_uses_and_input_size(standin, tmp_path):
    from rtseg.backends.tensorrt import TensorRTBackend, default_profile

    info = resolve_model("mnv2-050-lraspp-os32-240x320-voc-kd")  # measured at 192x256 too
    assert default_profile(info) == ShapeProfile((192, 256), (240, 320), (240, 320))
    assert default_profile(info, (160, 200)) == ShapeProfile((160, 200), (160, 200), (240, 320))
    backend = TensorRTBackend(info.path, precision="fp32", cache_dir=tmp_path, info=info, input_size=(224, 288))
    assert backend.profile.opt == (224, 288) and backend.static_size() is None
    for size in ((192, 256), (240, 320)):  # one engine, one context, two sizes
        assert backend.infer(np.zeros((1, 3, *size), np.float32))["mask"].shape == (1, *size)
    with pytest.raises(RtsegError, match="outside the engine's shape profile"):
        backend.infer(np.zeros((1, 3, 720, 960), np.float32))
    backend.close()


def infer_in_two_threads(backend, machine, frames: int = 3) -> dict[int, list[np.ndarray]]:
    """Two threads, class 2 and class 9 frames; each waits for the other before synchronizing, so both have
    queued their copies and inference before either stream runs."""
    barrier = threading.Barrier(2, timeout=20)
    machine.before_sync = barrier.wait
    inputs = {k: model_input(k) for k in (2, 9)}
    results, errors = {2: [], 9: []}, []

    def work(k):
        try:
            for _ in range(frames):
                results[k].append(backend.infer(inputs[k])["mask"])
        except Exception as e:  # pragma: no cover - shown by the assertion below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(k,)) for k in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    machine.before_sync = None
    assert not errors, errors
    return results


def test_each_thread_gets_its_own_context_stream_and_buffers(tiny_model, tmp_path, monkeypatch):
    from rtseg.backends.tensorrt import TensorRTBackend

    standin = install(monkeypatch)
    backend = TensorRTBackend(tiny_model, precision="fp32", cache_dir=tmp_path)
    results = infer_in_two_threads(backend, standin.machine)
    assert all((mask == k).all() for k, masks in results.items() for mask in masks)
    assert len(backend._lanes) == 3  # the loading thread's and one per inference thread, from one engine
    backend.close()
    assert standin.machine.leaks() == {"device": 0, "pinned": 0, "streams": 0}

    # the old design, one context, stream and pinned buffer shared by all threads: frames get each other's masks
    shared = TensorRTBackend(tiny_model, precision="fp32", cache_dir=tmp_path)
    lane = shared._lane()
    monkeypatch.setattr(shared, "_lane", lambda: lane)
    results = infer_in_two_threads(shared, standin.machine)
    assert not all((mask == k).all() for k, masks in results.items() for mask in masks)
    shared.close()


def test_threads_of_a_later_run_take_over_the_lanes_of_ended_ones(tiny_model, tmp_path, monkeypatch):
    """A slot kept across runs (a Segmenter) meets new inference threads every run: they reuse the ended
    threads' contexts, streams and buffers instead of adding more each time."""
    from rtseg.backends.tensorrt import TensorRTBackend

    standin = install(monkeypatch)
    backend = TensorRTBackend(tiny_model, precision="fp32", cache_dir=tmp_path)
    for _ in range(3):
        results = infer_in_two_threads(backend, standin.machine, frames=2)
        assert all((mask == k).all() for k, masks in results.items() for mask in masks)
        assert len(backend._lanes) == 3
    assert standin.machine.leaks()["streams"] == 3
    backend.close()
    assert standin.machine.leaks() == {"device": 0, "pinned": 0, "streams": 0}


def test_close_waits_for_inference_still_running_in_another_thread(tiny_model, tmp_path, monkeypatch, caplog):
    from rtseg.backends.tensorrt import TensorRTBackend

    standin = install(monkeypatch)
    backend = TensorRTBackend(tiny_model, precision="fp32", cache_dir=tmp_path)
    in_sync, release = threading.Event(), threading.Event()

    def held():
        in_sync.set()
        release.wait(20)

    standin.machine.before_sync = held
    got = []
    worker = threading.Thread(target=lambda: got.append(backend.infer(model_input(3))["mask"]))
    worker.start()
    assert in_sync.wait(20)  # the worker's frame is queued, its stream not yet run
    backend.close(timeout=0.05)  # gives up: freeing now would pull the buffers from under the worker
    assert "still running" in caplog.text and standin.machine.leaks()["device"] > 0
    threading.Timer(0.2, release.set).start()
    backend.close()  # waits for the worker, then frees
    worker.join(20)
    assert len(got) == 1 and (got[0] == 3).all()
    assert standin.machine.leaks() == {"device": 0, "pinned": 0, "streams": 0}
    with pytest.raises(RtsegError, match="closed"):
        backend.infer(model_input(3))


def test_pipeline_with_several_inference_threads_keeps_every_frame_its_own_mask(tiny_model, clip, tmp_path, monkeypatch):
    from rtseg.runtime.pipeline import Pipeline
    from rtseg.runtime.sinks import Sink
    from rtseg.runtime.slot import load_slot
    from rtseg.runtime.sources import open_source

    install(monkeypatch)

    class Classes(Sink):
        def __init__(self):
            self.seen = []

        def write(self, rec):
            self.seen.append((rec.index, int(np.argmax(rec.shares))))

        def close(self):
            pass

    slot = load_slot(resolve_model(str(tiny_model)), "tensorrt", precision="fp32", cache_dir=tmp_path)
    assert slot.backend.name == "tensorrt-fp32"
    sink = Classes()
    Pipeline(open_source(str(clip)), slot, [sink], streams=3).run(handle_signals=False)
    slot.close()
    assert sink.seen == [(i, i % NUM_CLASSES) for i in range(40)]


def test_a_pinned_host_buffer_is_uploaded_without_a_host_copy(tiny_model, tmp_path, monkeypatch):
    from rtseg.backends.tensorrt import TensorRTBackend

    machine = install(monkeypatch).machine
    backend = TensorRTBackend(tiny_model, precision="fp32", cache_dir=tmp_path)
    x = model_input(4)
    assert (backend.infer(x)["mask"] == 4).all() and machine.uploads_from[-1] != x.ctypes.data  # staged
    pinned = backend.host_buffer(x.shape)
    pinned[...] = x
    assert (backend.infer(pinned)["mask"] == 4).all() and machine.uploads_from[-1] == pinned.ctypes.data
    assert machine.pageable_copies == 0  # every copy is from or to page-locked memory, so truly asynchronous
    backend.close()
    assert machine.leaks() == {"device": 0, "pinned": 0, "streams": 0}


def _fails(attribute, value):
    return lambda standin, monkeypatch: monkeypatch.setattr(attribute[0], attribute[1], value)


def _raise(error):
    def raising(*_, **__):
        raise error

    return raising


FAILURES = {
    "not installed": lambda s, mp: mp.setitem(sys.modules, "tensorrt", None),
    "TensorRT 9": lambda s, mp: mp.setattr(s.tensorrt, "__version__", "9.3.0"),
    "no GPU": lambda s, mp: s.machine.devices.clear(),
    "no driver": lambda s, mp: setattr(s.machine, "driver_ok", False),
    "driver too old": lambda s, mp: setattr(s.machine, "driver_version", 12040),
    "parse error": _fails(
        (tensorrt_sim.OnnxParser, "parse"),
        lambda self, model, path=None: bool(self._errors.append(tensorrt_sim.ParserError("Unsupported ONNX operator"))),
    ),
    "API mismatch": _fails(
        (tensorrt_sim.IBuilderConfig, "set_memory_pool_limit"),
        _raise(AttributeError("'tensorrt.IBuilderConfig' object has no attribute 'x'\nmore")),
    ),
    "build fails": _fails((tensorrt_sim.Builder, "build_serialized_network"), lambda *_: None),
    "deserialize fails": _fails((tensorrt_sim.Runtime, "deserialize_cuda_engine"), lambda *_: None),
    "no context": _fails((tensorrt_sim.ICudaEngine, "create_execution_context"), _raise(RuntimeError("out of memory"))),
    "inference fails": _fails((tensorrt_sim.IExecutionContext, "execute_async_v3"), lambda *_: False),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_every_tensorrt_failure_is_one_line_and_falls_back_to_the_cpu(failure, tiny_model, tmp_path, monkeypatch):
    standin = install(monkeypatch)
    FAILURES[failure](standin, monkeypatch)
    warnings = []
    backend = backends.load_backend("tensorrt", str(tiny_model), warn=warnings.append, cache_dir=tmp_path, precision="fp32")
    assert backend.name == "onnxruntime-cpu"
    assert len(warnings) == 1 and "\n" not in warnings[0] and "falling back to ONNX Runtime" in warnings[0]
    with pytest.raises(RtsegError) as e:
        backends.load_backend("tensorrt", str(tiny_model), fallback=False, cache_dir=tmp_path, precision="fp32")
    assert "\n" not in str(e.value)
    assert standin.machine.leaks() == {"device": 0, "pinned": 0, "streams": 0}  # nothing left on the GPU


def test_a_cached_engine_this_tensorrt_cannot_load_is_rebuilt(tiny_model, tmp_path, monkeypatch, caplog):
    from rtseg.backends.tensorrt import TensorRTBackend

    standin = install(monkeypatch)
    backend = TensorRTBackend(tiny_model, precision="fp32", cache_dir=tmp_path)
    backend.close()
    backend.cache.store(backend.key, backend.model_name, b"a plan of some other build")  # checksum is fine
    again = TensorRTBackend(tiny_model, precision="fp32", cache_dir=tmp_path)
    assert len(standin.stats.builds) == 2 and "does not load" in caplog.text
    assert (again.infer(model_input(1))["mask"] == 1).all()
    again.close()


def test_timing_cache_is_one_file_per_tensorrt_and_gpu_and_merges(tiny_model, tmp_path, monkeypatch):
    pytest.importorskip("onnxconverter_common")
    from rtseg.backends.tensorrt import TensorRTBackend

    standin = install(monkeypatch)
    for precision in ("fp32", "fp16"):
        TensorRTBackend(tiny_model, precision=precision, cache_dir=tmp_path).close()
    [timing] = tmp_path.glob("timing-*.cache")
    assert timing.name.startswith("timing-trt11.4.0.106-sm89-nvidia-stand-in-gpu-")
    assert len(json.loads(timing.read_bytes())["entries"]) == 2  # the second build kept the first one's
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # another GPU of the same compute capability (8.9: an L4 and an RTX 4090) times kernels for itself
    standin.machine.devices[:] = [("NVIDIA L4", 8, 9)]
    TensorRTBackend(tiny_model, precision="fp32", cache_dir=tmp_path).close()
    assert len(list(tmp_path.glob("timing-*.cache"))) == 2
    assert len(json.loads(timing.read_bytes())["entries"]) == 2  # the stand-in GPU's own, untouched


def test_the_engine_key_holds_the_build_settings_and_the_build_uses_them(standin, tiny_model, tmp_path):
    from rtseg.backends.tensorrt import Device, TensorRTBackend, build_engine, engine_key, engine_source

    backend = TensorRTBackend(tiny_model, precision="fp32", cache_dir=tmp_path)
    built, settings = standin.stats.builds[-1], backend.key.settings
    assert settings.strongly_typed and built["strongly_typed"]
    assert (built["optimization_level"], built["workspace"]) == (settings.optimization_level, settings.workspace_bytes)
    assert backend.key.gpu == "NVIDIA Stand-In GPU" and backend.key.compute_capability == "8.9"
    backend.close()
    source, device = engine_source(tiny_info(tiny_model), "fp32"), Device("NVIDIA Stand-In GPU", "8.9")
    keys = [
        engine_key(standin.tensorrt, source, device, backend.profile, **change)
        for change in ({}, {"optimization_level": 5}, {"workspace_gib": 1.0})
    ]
    assert len({k.filename("tiny") for k in keys}) == 3  # another optimization level or workspace: another engine
    for k in keys[1:]:  # and the build is set up from the key, not from defaults of its own
        build_engine(standin.tensorrt, source, k, EngineCache(tmp_path))
        built = standin.stats.builds[-1]
        assert (built["optimization_level"], built["workspace"]) == (k.settings.optimization_level, k.settings.workspace_bytes)


def test_tensorrt_has_one_logger_and_its_build_warnings_reach_rtsegs_log(tiny_model, tmp_path, monkeypatch, caplog):
    """TensorRT keeps the first logger a builder or runtime is made with; `auto` probes (a runtime) before
    anything is built, so a probe with a logger of its own would take every later build warning with it."""
    import logging

    from rtseg.backends.tensorrt import TensorRTBackend, probe_tensorrt

    standin = install(monkeypatch)
    standin.stats.build_warnings = ["Detected layers that run in FP32 although the network is strongly typed"]
    caplog.set_level(logging.DEBUG, logger="rtseg")
    assert probe_tensorrt()[0] == "11.4.0.106"
    TensorRTBackend(tiny_model, precision="fp32", cache_dir=tmp_path).close()
    warned = [r for r in caplog.records if "run in FP32 although" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING and warned[0].name.startswith("rtseg")
    assert warned[0].getMessage().startswith("TensorRT: ")
    assert "differs from one already provided" not in caplog.text  # no second logger was offered


def test_a_driver_older_than_the_cuda_bindings_is_said_in_one_line(monkeypatch):
    from rtseg.backends.tensorrt import probe_tensorrt

    standin = install(monkeypatch)
    standin.machine.driver_version = 12040  # an R550 driver (CUDA 12.4); the bindings are CUDA 13
    version, why = probe_tensorrt()
    assert version is None and "\n" not in why
    assert "CUDA 12.4" in why and "CUDA 13" in why and "pip install 'rtseg[tensorrt-cu12]'" in why
    standin.machine.driver_ok = False
    assert "no NVIDIA driver could be loaded" in probe_tensorrt()[1]


def test_each_tensorrt_extra_pins_cuda_bindings_to_the_cuda_of_its_tensorrt_wheel():
    """A CUDA-versioned TensorRT wheel and cuda-bindings of the same CUDA major: pip could otherwise pair CUDA
    12 TensorRT with CUDA 13 bindings, whose device query fails on a driver older than CUDA 13."""
    import ast
    import re

    from packaging.requirements import Requirement

    setup = ast.parse((TESTS.parent / "setup.py").read_text())
    call = next(n for n in ast.walk(setup) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    extras = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "extras_require"))
    paired = {
        name: {Requirement(r).name: Requirement(r) for r in reqs}
        for name, reqs in extras.items()
        if any(Requirement(r).name.startswith("tensorrt") for r in reqs)
    }
    assert {"tensorrt", "tensorrt-cu12", "tensorrt-cu13"} <= set(paired)
    for name, reqs in paired.items():
        wheel = next(r for r in reqs if r.startswith("tensorrt"))
        cuda = re.fullmatch(r"tensorrt-cu(\d+)", wheel)  # not `tensorrt`, whose CUDA moves with its version
        assert cuda, f"{name}: {wheel}"
        major, bindings = int(cuda.group(1)), reqs["cuda-bindings"].specifier
        assert f"{major}.9.9" in bindings, name
        assert f"{major - 1}.9.9" not in bindings and f"{major + 1}.0.0" not in bindings, name
        assert reqs[wheel].specifier.contains("11.4.0.106") and not reqs[wheel].specifier.contains("12.0.0"), name
    assert paired["tensorrt"] == paired["tensorrt-cu13"]  # the plain extra picks CUDA 13, as `tensorrt` 11 does


def test_timing_cache_names_tell_gpus_of_one_architecture_apart(tmp_path):
    cache = EngineCache(tmp_path)
    names = {
        cache.timing_path("10.13.0", gpu, "8.9").name
        for gpu in ("NVIDIA L4", "NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090 ", "NVIDIA GeForce RTX 4090/")
    }
    assert len(names) == 4  # names that make the same readable part are still kept apart
    assert cache.timing_path("10.13.0", "NVIDIA L4", "8.9") == cache.timing_path("10.13.0", "NVIDIA L4", "8.9")


CHILD = """
import hashlib, sys
sys.path.insert(0, {tests!r})
from trt_standin import install
install()
from rtseg.backends.tensorrt import TensorRTBackend
backend = TensorRTBackend({model!r}, precision="fp32", cache_dir={cache!r})
print(hashlib.sha256(backend.engine_path.read_bytes()).hexdigest())
"""


def test_two_processes_wanting_one_engine_build_it_once(tiny_model, tmp_path):
    cache, log = tmp_path / "engines", tmp_path / "builds.log"
    env = {**os.environ, "RTSEG_STANDIN_BUILD_SECONDS": "1.5", "RTSEG_STANDIN_BUILD_LOG": str(log)}
    code = CHILD.format(tests=str(TESTS), model=str(tiny_model), cache=str(cache))
    children = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    assert [c.returncode for c in children] == [0, 0], [err for _, err in outputs]
    assert len(log.read_text().splitlines()) == 1  # one built; the other waited on the lock and loaded it
    digests = {out.strip() for out, _ in outputs}
    assert len(digests) == 1 and "" not in digests  # both got the same, whole engine file
    engine = next(cache.glob("*.engine"))
    assert hashlib.sha256(engine.read_bytes()).hexdigest() in digests
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_fp16_conversion_keeps_io_types_and_agrees_with_fp32_on_a_shipped_model():
    pytest.importorskip("onnxconverter_common")
    import onnx
    import onnxruntime as ort

    from rtseg.backends.fp16_onnx import fp16_onnx_bytes

    path = ENGINES / "mnv2-050-lraspp-os32-240x320-voc-kd.onnx"
    fp16 = fp16_onnx_bytes(path)
    proto = onnx.load_from_string(fp16)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    x = np.random.default_rng(0).standard_normal((1, 3, 240, 320)).astype(np.float32)
    masks = [ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0] for m in (str(path), fp16)]
    assert (masks[0] == masks[1]).mean() > 0.999


# -- on a GPU ------------------------------------------------------------------------------------------
def _gpu_ready() -> bool:
    if "tensorrt" in sys.modules and sys.modules["tensorrt"].__class__.__name__ == "StrictModule":
        return False
    from rtseg.backends.tensorrt import probe_tensorrt

    return probe_tensorrt()[0] is not None


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs an NVIDIA GPU, TensorRT and cuda-python")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_onnxruntime(tiny_model, tmp_path, precision):
    from rtseg.backends.onnxruntime import OnnxRuntimeBackend
    from rtseg.backends.tensorrt import TensorRTBackend

    x = np.random.default_rng(0).standard_normal((1, 3, 64, 80)).astype(np.float32)
    trt_backend = TensorRTBackend(tiny_model, precision=precision, cache_dir=tmp_path)
    ours = trt_backend.infer(x)["mask"]
    trt_backend.close()
    ref = OnnxRuntimeBackend(tiny_model).infer(x)["mask"]
    assert ours.dtype == np.uint8 and (ours == ref).mean() > 0.99
    again = TensorRTBackend(tiny_model, precision=precision, cache_dir=tmp_path)  # from the cache this time
    assert (again.infer(x)["mask"] == ours).all()
    again.close()


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs an NVIDIA GPU, TensorRT and cuda-python")
def test_dynamic_engine_in_several_threads_at_two_sizes_matches_onnxruntime(tmp_path):
    """Contexts of one engine sharing its one dynamic profile, at different shapes at the same time."""
    from rtseg.backends.onnxruntime import OnnxRuntimeBackend
    from rtseg.backends.tensorrt import TensorRTBackend

    info = resolve_model("mnv2-050-lraspp-os32-240x320-voc-kd")
    backend = TensorRTBackend(info.path, precision="fp32", cache_dir=tmp_path, info=info)
    ref = OnnxRuntimeBackend(info.path)
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((1, 3, *size)).astype(np.float32) for size in ((192, 256), (240, 320)) * 2]
    expected = [ref.infer(x)["mask"] for x in inputs]
    agreement, errors = [[] for _ in inputs], []

    def work(i):
        try:
            for _ in range(20):
                agreement[i].append((backend.infer(inputs[i])["mask"] == expected[i]).mean())
        except Exception as e:  # pragma: no cover - shown by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    backend.close()
    assert not errors, errors
    assert min(min(a) for a in agreement) > 0.99


def test_gpu_backends_run_a_cpu_int8_model_as_its_base(standin, tmp_path):
    from rtseg.backends import load_backend

    info = resolve_model("mnv2-100-dlv3p-os16-288x384-voc-int8")
    backend = load_backend("tensorrt", info, fallback=False, cache_dir=tmp_path, precision="fp16")
    assert backend.name == "tensorrt-fp16" and not standin.stats.builds[-1]["qdq"]  # the FP32 base, not the Q/DQ file
    backend.close()
