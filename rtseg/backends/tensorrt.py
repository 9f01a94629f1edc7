"""TensorRT backend: build (once, cached) and run an engine from a shipped ONNX model.

Building follows TensorRT's own samples: the ONNX parser fills a network, one optimization profile
covers the input shapes, a timing cache kept beside the engines makes rebuilds fast, FP16 and INT8 are
builder flags, INT8 calibrates with TensorRT's entropy calibrator (its table cached and reused).
Device memory and streams come from PyTorch (the `tensorrt` extra installs it), as in Ultralytics.
The argmax is inside the graph, so the only tensor copied back is the uint8 class map (and boxes).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..core.errors import RtsegError
from .engine_cache import EngineCache, EngineKey, ShapeProfile

INPUT = "image"
log = logging.getLogger(__name__)


def _import_trt():
    try:
        import tensorrt as trt
        import torch
    except Exception as e:  # ImportError, or a broken install missing its libraries
        raise RtsegError(f"the tensorrt backend needs TensorRT and PyTorch with CUDA: pip install 'rtseg[tensorrt]' "
                         f"({e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    if not torch.cuda.is_available():
        raise RtsegError("the tensorrt backend needs an NVIDIA GPU, and PyTorch sees none")
    return trt, torch


def engine_key(onnx_path: Path, precision: str, profile: ShapeProfile) -> EngineKey:
    trt, torch = _import_trt()
    from ..core.modelinfo import sha256

    major, minor = torch.cuda.get_device_capability()
    return EngineKey(sha256(onnx_path), torch.cuda.get_device_name(), f"{major}.{minor}", trt.__version__,
                     precision, profile)


def make_calibrator(trt, torch, images: list[np.ndarray], cache_file: Path):
    """TensorRT's entropy calibrator fed with preprocessed frames, one at a time; its table is cached."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.images = iter(images)
            self.device = None

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            x = next(self.images, None)
            if x is None:
                return None
            self.device = torch.from_numpy(np.ascontiguousarray(x)).cuda()  # kept alive until the next call
            return [int(self.device.data_ptr())]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.exists() else None

        def write_calibration_cache(self, cache) -> None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return EntropyCalibrator()


def build_engine(onnx_path: Path, precision: str, profile: ShapeProfile, cache: EngineCache,
                 calib_images: list[np.ndarray] | None = None, calib_cache: Path | None = None,
                 workspace_gib: float = 4.0) -> bytes:
    trt, torch = _import_trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RtsegError(f"TensorRT cannot parse {onnx_path}: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT, (1, 3, *profile.min), (1, 3, *profile.opt), (1, 3, *profile.max))
    config.add_optimization_profile(opt_profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 engines keep FP16 for the layers INT8 does not suit
    if precision == "int8":
        if not calib_images and not (calib_cache and calib_cache.exists()):
            raise RtsegError("an INT8 engine needs calibration frames (--calib-data DIR) or a calibration cache")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = make_calibrator(trt, torch, calib_images or [], calib_cache)
        config.set_calibration_profile(opt_profile)
    timing_file = cache.folder / "timing.cache"
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.exists() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RtsegError(f"TensorRT could not build an engine for {onnx_path} ({precision}, {profile.label()})")
    cache.folder.mkdir(parents=True, exist_ok=True)
    timing_file.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


class TensorRTBackend:
    def __init__(self, model_path: str | Path, precision: str = "fp16", profile: ShapeProfile | None = None,
                 cache_dir: str | Path | None = None, info=None, **_):
        trt, torch = _import_trt()
        if info is None:  # called with a bare path: read the file's metadata once, here
            from ..core.modelinfo import resolve_model

            info = resolve_model(str(model_path))
        self.profile = profile or ShapeProfile.fixed(info.input_size)
        self.precision = precision
        cache = EngineCache(cache_dir)
        key = engine_key(info.path, precision, self.profile)
        data, why = cache.load(key, info.name)
        engine = None
        runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        if data is not None:
            engine = runtime.deserialize_cuda_engine(data)
            if engine is None:
                why = "cached engine failed to deserialize"
        if engine is None:
            if why != "no cached engine":
                log.warning(f"rtseg: {why}; rebuilding")
                cache.discard(key, info.name)
            # a warning, so that even --quiet says why the start takes minutes (as it did before logging)
            log.warning(f"rtseg: building a TensorRT {precision} engine for {info.name} ({self.profile.label()}); "
                        "this takes a minute or two, once per GPU and TensorRT version")
            data = build_engine(info.path, precision, self.profile, cache)
            cache.store(key, info.name, data, {"model": info.name})
            engine = runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise RtsegError(f"TensorRT built an engine for {info.name} but cannot load it")
        self.engine, self.context = engine, engine.create_execution_context()
        self.torch, self.trt = torch, trt
        self.stream = torch.cuda.Stream()
        self.input_name = INPUT
        self.output_names = [n for n in (engine.get_tensor_name(i) for i in range(engine.num_io_tensors))
                             if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.name = f"tensorrt-{precision}"
        self._shape = None

    def static_size(self) -> tuple[int, int] | None:
        p = self.profile
        return tuple(p.opt) if p.min == p.opt == p.max else None

    def _bind(self, shape: tuple[int, ...]) -> None:
        """(Re)allocate device and pinned host buffers when the input shape changes (not per frame)."""
        torch, trt = self.torch, self.trt
        if not self.profile.contains(shape[2:]):
            raise RtsegError(f"input {shape[2]}x{shape[3]} is outside the engine's shape profile {self.profile.label()}")
        self.context.set_input_shape(INPUT, shape)
        self.host_in = torch.empty(shape, dtype=torch.float32, pin_memory=True)
        self.host_in_view = self.host_in.numpy()  # numpy views of the pinned buffers, made once per shape
        self.dev_in = torch.empty(shape, dtype=torch.float32, device="cuda")
        self.context.set_tensor_address(INPUT, self.dev_in.data_ptr())
        self.dev_out, self.host_out = {}, {}
        for n in self.output_names:
            dtype = torch.from_numpy(np.empty(0, trt.nptype(self.engine.get_tensor_dtype(n)))).dtype
            out_shape = tuple(self.context.get_tensor_shape(n))
            self.dev_out[n] = torch.empty(out_shape, dtype=dtype, device="cuda")
            self.host_out[n] = torch.empty(out_shape, dtype=dtype, pin_memory=True)
            self.context.set_tensor_address(n, self.dev_out[n].data_ptr())
        self.host_out_views = {n: t.numpy() for n, t in self.host_out.items()}
        self._shape = shape

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        if image.shape != self._shape:
            self._bind(image.shape)
        torch = self.torch
        with torch.cuda.stream(self.stream):
            self.host_in_view[...] = image
            self.dev_in.copy_(self.host_in, non_blocking=True)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RtsegError("TensorRT inference failed")
            for n in self.output_names:
                self.host_out[n].copy_(self.dev_out[n], non_blocking=True)
        self.stream.synchronize()
        # copies: the pinned buffers are overwritten by the next frame while this one is still being drawn
        return {n: v.copy() for n, v in self.host_out_views.items()}

    def close(self) -> None:
        self.context = self.engine = None
