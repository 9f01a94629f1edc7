"""TensorRT backend: build (once, cached) and run an engine from a shipped ONNX model.

Building follows TensorRT's own samples: the ONNX parser fills a strongly typed network, one optimization
profile covers every input size the model may be run at, and a timing cache kept beside the engines makes
rebuilds fast. Strongly typed means the ONNX file decides each layer's precision (TensorRT 11 removed the
FP16/INT8 builder flags and the INT8 calibrator): fp32 builds the model as it is, fp16 an FP16 conversion of
it (graph input and output left in their types), int8 the model's INT8 sibling, an explicitly quantized
(Q/DQ) file checked against TensorRT's rules first, its layers left unquantized (the full-size Resize, the
ArgMax) in FP16 as NVIDIA's Model Optimizer makes them. The graph's uint8 class map is cast from a float, the one
conversion to uint8 every TensorRT document allows. The same calls exist in TensorRT 10.0 through 11.x;
where the two differ the code asks what the module has (`hasattr`), never its version string.

TensorRT keeps one logger per process (the first one a builder or runtime is made with; later ones are
ignored), so rtseg makes one (`trt_logger`) and passes TensorRT's warnings and errors to its own logging.

Device memory and streams come from cuda-python's CUDA runtime bindings (`cuda.bindings.runtime`, the
package NVIDIA's TensorRT samples use), a few megabytes instead of PyTorch. Every thread that calls
`infer` gets its own execution context, CUDA stream and buffers (created on its first call, all from one
engine), so the pipeline's inference threads never share a buffer or wait on each other's stream; TensorRT
10 and later let several contexts use one optimization profile. The argmax is inside the graph, so the
only tensors copied back are the uint8 class map (and boxes).

Every failure, from a missing package to a TensorRT call this version does not have, is an RtsegError of
one line, so `load_backend` can fall back to the CPU with a warning.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..core.errors import RtsegError
from ..core.modelinfo import cpu_int8_base
from .engine_cache import BuildSettings, EngineCache, EngineKey, ShapeProfile, as_shape

if TYPE_CHECKING:
    from ..core.modelinfo import ModelInfo

log = logging.getLogger(__name__)
SUPPORTED_MAJOR = (10, 11)  # the `tensorrt` extra's bounds: >=10.0.1,<12
CLOSE_WAIT_S = 10.0  # how long `close` waits for inferences still running in other threads
# what this module calls at module level; a TensorRT without one of them cannot run rtseg's engines
REQUIRED = (
    "Logger",
    "Builder",
    "Runtime",
    "OnnxParser",
    "NetworkDefinitionCreationFlag",
    "MemoryPoolType",
    "TensorIOMode",
    "BuilderFlag",
    "nptype",
)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{e.__class__.__name__}: {text[0][:200]}" if text else e.__class__.__name__


# -- the libraries -----------------------------------------------------------------------------------
_logger_lock = threading.Lock()
_logger: tuple | None = None  # (the tensorrt module, the one logger made for it)


def trt_logger(trt):
    """The process's one TensorRT logger: TensorRT's warnings and errors go to rtseg's logging (its info
    messages at debug level, its verbose ones nowhere).

    One, because TensorRT keeps the first logger a builder or runtime is created with and ignores later ones
    ("the logger is internally considered a singleton, and thus multiple instances of IRuntime and/or
    IBuilder must all use the same logger", ILogger in TensorRT's C++ API; a later different one gets "The
    logger passed into createInferRuntime differs from one already provided ..."): a probe's ERROR-only logger
    made first would swallow every build warning after it. A subclass of trt.ILogger is how TensorRT's Python
    API takes a logger of the application's own."""
    global _logger
    with _logger_lock:
        if _logger is None or _logger[0] is not trt:
            levels = {
                trt.ILogger.INTERNAL_ERROR: logging.ERROR,
                trt.ILogger.ERROR: logging.ERROR,
                trt.ILogger.WARNING: logging.WARNING,
                trt.ILogger.INFO: logging.DEBUG,
            }

            class RtsegLogger(trt.ILogger):
                def __init__(self):
                    trt.ILogger.__init__(self)

                def log(self, severity, msg):  # called from TensorRT's threads too: logging is thread-safe
                    level = levels.get(severity)
                    if level is None:
                        return
                    try:
                        log.log(level, f"TensorRT: {str(msg).strip()}")
                    except Exception:  # an exception cannot cross TensorRT's noexcept ILogger::log
                        pass

            _logger = (trt, RtsegLogger())
        return _logger[1]


def import_tensorrt():
    """(tensorrt, cuda.bindings.runtime), checked to be usable here; an RtsegError saying why not."""
    try:
        import tensorrt as trt
        from cuda.bindings import runtime as cudart
    except Exception as e:  # ImportError, or a broken install missing its libraries
        raise RtsegError(f"the tensorrt backend needs TensorRT and cuda-python: pip install 'rtseg[tensorrt]' ({_first_line(e)})") from e
    version = str(getattr(trt, "__version__", "unknown"))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = None
    if major not in SUPPORTED_MAJOR:
        raise RtsegError(f"TensorRT {version} is not supported (rtseg runs TensorRT 10.x and 11.x): pip install 'rtseg[tensorrt]'")
    missing = [name for name in REQUIRED if not hasattr(trt, name)]
    if missing:
        raise RtsegError(f"TensorRT {version} lacks {', '.join(missing)}; reinstall it: pip install 'rtseg[tensorrt]'")
    return trt, cudart


def probe_tensorrt() -> tuple[str | None, str]:
    """(TensorRT version, "") when this machine can run TensorRT engines, else (None, why not).

    The real thing, short of building: the modules import, have what rtseg calls, a CUDA device answers,
    and TensorRT can create its runtime on it."""
    try:
        trt, cudart = import_tensorrt()
        # what building needs besides TensorRT (the FP16 default converts the model first): without them
        # `auto` would pick TensorRT and then fall back to the CPU at load, passing over ONNX Runtime CUDA
        missing = [m for m in ("onnx", "onnxconverter_common") if importlib.util.find_spec(m) is None]
        if missing:
            raise RtsegError(f"the tensorrt backend also needs {' and '.join(missing)}: pip install 'rtseg[tensorrt]'")
        _Cuda(cudart).device()
        if trt.Runtime(trt_logger(trt)) is None:
            raise RtsegError("TensorRT could not create its runtime")
    except RtsegError as e:
        return None, str(e)
    except Exception as e:  # whatever a half-working install raises
        return None, f"TensorRT does not work here ({_first_line(e)})"
    return str(trt.__version__), ""


@dataclass(frozen=True)
class Device:
    name: str  # e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str  # e.g. "9.0"


class _Cuda:
    """The few CUDA runtime calls the backend makes, each checked: an error is an RtsegError naming it."""

    def __init__(self, cudart):
        self.rt = cudart

    def _ok(self, result, what: str):
        err, *values = result
        if err != self.rt.cudaError_t.cudaSuccess:
            named = self.rt.cudaGetErrorName(err)
            name = named[1].decode(errors="replace") if named[0] == self.rt.cudaError_t.cudaSuccess else str(err)
            hint = " (no NVIDIA GPU, or its driver is older than this cuda-bindings needs)" if "Device" in name or "Driver" in name else ""
            raise RtsegError(f"CUDA {what} failed: {name}{hint}")
        return values[0] if len(values) == 1 else None

    def device(self, index: int = 0) -> Device:
        result = self.rt.cudaGetDeviceCount()
        if result[0] == self.rt.cudaError_t.cudaErrorInsufficientDriver:
            raise RtsegError(f"CUDA device query failed: {self.driver_problem()}")
        count = self._ok(result, "device query")
        if count < 1:
            raise RtsegError("the tensorrt backend needs an NVIDIA GPU, and CUDA sees none")
        props = self._ok(self.rt.cudaGetDeviceProperties(index), "device query")
        name = props.name.split(b"\0")[0].decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        return Device(name, f"{props.major}.{props.minor}")

    def driver_problem(self) -> str:
        """Why CUDA calls the driver insufficient, as one sentence: none could be loaded, or it predates the
        CUDA major version these cuda-bindings are built for (13.x needs an R580 driver or later)."""
        ok = self.rt.cudaError_t.cudaSuccess
        err, driver = self.rt.cudaDriverGetVersion()
        runtime_err, runtime = self.rt.cudaRuntimeGetVersion()
        if err != ok or not driver:
            return "no NVIDIA driver could be loaded (cudaErrorInsufficientDriver)"
        if runtime_err != ok or driver // 1000 >= runtime // 1000:
            return f"cudaErrorInsufficientDriver (the driver supports CUDA {driver // 1000}.{driver % 1000 // 10})"
        cuda = driver // 1000
        fix = (
            f", or install the CUDA {cuda} build: pip install 'rtseg[tensorrt-cu{cuda}]'"
            if cuda in (12, 13)
            else " (TensorRT 10 and later need CUDA 12 or later)"
        )
        return (
            f"the NVIDIA driver supports CUDA {cuda}.{driver % 1000 // 10}, older than the CUDA {runtime // 1000} "
            f"these cuda-bindings need: update the driver{fix}"
        )

    def stream(self):
        return self._ok(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking), "stream creation")

    def destroy_stream(self, stream) -> None:
        self._ok(self.rt.cudaStreamDestroy(stream), "stream destruction")

    def synchronize(self, stream) -> None:
        self._ok(self.rt.cudaStreamSynchronize(stream), "stream synchronization")

    def malloc(self, nbytes: int) -> int:
        return int(self._ok(self.rt.cudaMalloc(max(nbytes, 1)), f"allocation of {nbytes} bytes"))

    def free(self, pointer: int) -> None:
        self._ok(self.rt.cudaFree(pointer), "free")

    def pinned(self, nbytes: int) -> np.ndarray:
        """Page-locked host memory as a uint8 array (copies from it run asynchronously, at full speed)."""
        pointer = int(self._ok(self.rt.cudaMallocHost(max(nbytes, 1)), f"pinned allocation of {nbytes} bytes"))
        return np.ctypeslib.as_array((ctypes.c_uint8 * max(nbytes, 1)).from_address(pointer))

    def free_pinned(self, array: np.ndarray) -> None:
        self._ok(self.rt.cudaFreeHost(array.ctypes.data), "pinned free")

    def upload(self, device: int, host: int, nbytes: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._ok(self.rt.cudaMemcpyAsync(device, host, nbytes, kind, stream), "upload")

    def download(self, host: int, device: int, nbytes: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._ok(self.rt.cudaMemcpyAsync(host, device, nbytes, kind, stream), "download")


# -- what TensorRT parses -----------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineSource:
    """The ONNX model TensorRT parses for an engine, as bytes, and what the engine is called and keyed by."""

    model_name: str
    precision: str  # what the file's types make of the engine: fp32 | fp16 | int8
    onnx: bytes  # what the parser reads (an FP16 conversion for fp16)
    sha256: str  # of those bytes: an engine is valid for exactly what was parsed
    input_name: str
    static_size: tuple[int, int] | None  # (H, W) when the graph fixes them, else None


def engine_source(info: ModelInfo, precision: str) -> EngineSource:
    """The ONNX for an engine of `info` at `precision`: the FP32 file, its FP16 conversion, or an INT8 Q/DQ
    file (the model itself when it is quantized, else its INT8 sibling), refused with one line when
    TensorRT's explicit quantization cannot take it. A quantized file always makes an INT8 engine, its
    unquantized layers in FP16 (`convert_to_fp16` of the Q/DQ graph). Graph input and output types stay."""
    import onnx

    from .qdq import int8_model, is_quantized, refuse_unless_trt_ready

    if precision not in ("fp32", "fp16", "int8"):
        raise RtsegError(f"unknown TensorRT precision {precision!r} (fp32, fp16 or int8)")
    base = cpu_int8_base(info) if precision != "int8" else None
    if base is not None:  # laid out for the CPU, refused by TensorRT: its engine comes from the FP32 model
        log.info(
            f"rtseg: {info.name} is INT8 laid out for ONNX Runtime on the CPU; TensorRT builds its {precision} engine from {base.name}"
        )
        info = base
    model = onnx.load(str(info.path))
    if precision == "int8" and not is_quantized(model):
        info = int8_model(info)
        model = onnx.load(str(info.path))
    if is_quantized(model):
        refuse_unless_trt_ready(model, info.name)
        if precision != "int8":
            log.info(f"rtseg: {info.name} is quantized, so its engine is INT8 (the file decides, not --precision)")
        precision = "int8"
    if precision in ("fp16", "int8"):
        # int8: strongly typed, whatever the Q/DQ pairs leave unquantized (the full-size Resize, the ArgMax)
        # would run in the file's FP32; Model Optimizer converts those layers to FP16 by default
        # (`high_precision_dtype="fp16"` in modelopt.onnx.quantization), and so does rtseg
        from .fp16_onnx import convert_to_fp16

        model = convert_to_fp16(model)
    model = uint8_outputs_from_float(model)
    data = model.SerializeToString()
    graph_input = model.graph.input[0]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph_input.type.tensor_type.shape.dim]
    static = (dims[2], dims[3]) if len(dims) == 4 and dims[2] and dims[3] else None
    return EngineSource(info.name, precision, data, hashlib.sha256(data).hexdigest(), graph_input.name, static)


def uint8_outputs_from_float(model):
    """`model` with each uint8 graph output cast from a float: ArgMax -> Cast(UINT8), an INT64 -> UINT8 cast,
    becomes ArgMax -> Cast(FLOAT) -> Cast(UINT8) (class indices are exact in a float; float -> uint8 truncates).

    NVIDIA's pages disagree on INT64 -> UINT8: the Cast operator page allows "all conversions between supported
    data types", while DataType.UINT8 ("uint8 conversions are only supported for {float32, float16}... not
    supported for {int8, int32, bool}") and IIdentityLayer ("(kFLOAT | kHALF) -> kUINT8, kUINT8 -> (kFLOAT |
    kHALF)") do not list it, and ONNX-TensorRT's Cast importer of the 8.6 era asserted "UINT8 type casting is only
    supported from FP types". ArgMax's indices are INT64 inside the parser (its TopK's INT32 indices are cast
    to INT64, argMinMaxHelper), so only a float in between makes the cast one that every version documents.
    Other outputs, and uint8 outputs already cast from a float, are left as they are."""
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    uint8_outputs = {o.name for o in graph.output if o.type.tensor_type.elem_type == TensorProto.UINT8}
    casts = [n for n in graph.node if n.op_type == "Cast" and n.output[0] in uint8_outputs]
    if not casts:
        return model
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.value_info, *inferred.input, *inferred.output]}
    types.update({t.name: t.data_type for t in graph.initializer})
    for cast in casts:
        if types.get(cast.input[0]) in (TensorProto.FLOAT, TensorProto.FLOAT16):
            continue
        as_float = f"{cast.input[0]}_as_float"
        index = list(graph.node).index(cast)
        graph.node.insert(
            index,
            helper.make_node("Cast", [cast.input[0]], [as_float], to=TensorProto.FLOAT, name=f"{cast.name or cast.output[0]}_via_float"),
        )
        cast.input[0] = as_float
    return model


def selector_sizes(info: ModelInfo) -> list[tuple[int, int]]:
    """Every input size the manifest holds a measurement at, on any split: the sizes the selector may run the
    model at (`camvid_<split>@HxW` keys; the model's own size is the bare key)."""
    sizes = []
    for key in info.entry.get("metrics", {}):
        if "@" in key:
            h, w = key.split("@", 1)[1].split("x")
            sizes.append((int(h), int(w)))
    return sizes


def default_profile(info: ModelInfo, input_size: tuple[int, int] | None = None) -> ShapeProfile:
    """One profile for every size this model may meet: its own, each size the selector has a measurement at,
    and `--input-size`; tuned for the size it will run at (`input_size`, else its own)."""
    own = as_shape(info.input_size)
    opt = as_shape(input_size) if input_size else own
    return ShapeProfile.covering([own, *selector_sizes(info)], opt)


def engine_key(
    trt, source: EngineSource, device: Device, profile: ShapeProfile, workspace_gib: float = 4.0, optimization_level: int = 3
) -> EngineKey:
    """Everything an engine is valid for, the one place it is computed: what was parsed, at which precision,
    on which GPU (name and compute capability) and TensorRT, for which shapes, and how the builder was set
    up. `build_engine` takes its settings from the key, so an engine can only be found under what made it."""
    settings = BuildSettings(
        strongly_typed=strongly_typed(trt), optimization_level=optimization_level, workspace_bytes=int(workspace_gib * (1 << 30))
    )
    return EngineKey(source.sha256, device.name, device.compute_capability, str(trt.__version__), source.precision, profile, settings)


def strongly_typed(trt) -> bool:
    """Whether `network_flags` makes a strongly typed network: always, on TensorRT 10 (by the flag) and 11."""
    return network_flags(trt) != 0 or not hasattr(trt.BuilderFlag, "FP16")


def network_flags(trt) -> int:
    """Strongly typed: each layer runs in the type the ONNX file gives it. TensorRT 10 still builds weakly
    typed networks unless asked (it still has BuilderFlag.FP16); 11 removed weak typing, every network is
    strongly typed there and the flag is deprecated (accepted and ignored), so it is not passed."""
    weak_typing_exists = hasattr(trt.BuilderFlag, "FP16")
    if weak_typing_exists and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def build_engine(trt, source: EngineSource, key: EngineKey, cache: EngineCache) -> bytes:
    """A serialized engine of `source` as `key` describes it (profile and builder settings), using and
    updating the timing cache of the key's TensorRT and GPU."""
    settings, profile = key.settings, key.profile
    builder = trt.Builder(trt_logger(trt))
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, trt_logger(trt))
    if not parser.parse(source.onnx):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise RtsegError(f"TensorRT cannot parse {source.model_name}: {errors[:300] or 'no reason given'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    config.builder_optimization_level = settings.optimization_level
    shapes = profile.min, profile.opt, profile.max
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(source.input_name, *[(1, 3, *s) for s in shapes])
    if config.add_optimization_profile(opt_profile) < 0:
        raise RtsegError(f"TensorRT refused the shape profile {profile.label()} for {source.model_name}")
    timing_key = key.tensorrt, key.gpu, key.compute_capability
    on_disk = cache.read_timing(*timing_key)
    try:
        timing = config.create_timing_cache(on_disk)
        usable = timing is not None and config.set_timing_cache(timing, False)
    except Exception:  # a damaged file: the parser of timing caches raises on some
        usable = False
    if not usable:  # damaged, or from another GPU: start afresh
        on_disk, timing = b"", config.create_timing_cache(b"")
        config.set_timing_cache(timing, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RtsegError(f"TensorRT could not build an engine for {source.model_name} ({source.precision}, {profile.label()})")

    def merged(now_on_disk: bytes) -> bytes:
        ours = config.get_timing_cache()
        if now_on_disk and now_on_disk != on_disk:  # another build added timings meanwhile: keep them too
            try:
                ours.combine(config.create_timing_cache(now_on_disk), False)
            except Exception:  # theirs is damaged: ours alone then
                pass
        return bytes(ours.serialize())

    try:
        cache.update_timing(*timing_key, merged)
    except Exception as e:  # the engine is fine; only the next build is slower
        log.warning(f"rtseg: could not save TensorRT's timing cache ({_first_line(e)})")
    return bytes(serialized)


# -- the backend --------------------------------------------------------------------------------------
class _Lane:
    """One calling thread's execution context, stream and buffers, sized once for the profile's largest input,
    so a change of input size only sets shapes."""

    def __init__(self, engine, cuda: _Cuda, input_name: str, outputs: list[str], profile: ShapeProfile, trt):
        self.cuda, self.input_name, self.outputs = cuda, input_name, outputs
        self.device: dict[str, int] = {}  # device pointers, by tensor name
        self.pinned: dict[str, np.ndarray] = {}  # page-locked host buffers (uint8), by tensor name
        self.views: dict[str, np.ndarray] = {}  # the pinned buffers at the bound shape
        self.shape: tuple[int, ...] | None = None  # the bound input shape
        self.stream: Any = None  # a cuda-python cudaStream_t
        self.owner = threading.current_thread()  # the thread using it; another takes it over once it has ended
        try:
            self.context = engine.create_execution_context()
            if self.context is None:
                raise RtsegError("TensorRT could not create an execution context (out of GPU memory?)")
            self.stream = cuda.stream()
            self.dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in [input_name, *outputs]}
            self._set_shape((1, 3, *profile.max))
            for name in [input_name, *outputs]:
                nbytes = self._nbytes(name)
                self.device[name] = cuda.malloc(nbytes)
                self.pinned[name] = cuda.pinned(nbytes)
                if not self.context.set_tensor_address(name, self.device[name]):
                    raise RtsegError(f"TensorRT refused the buffer of tensor {name}")
        except BaseException:
            try:
                self.close()
            except Exception:  # the failure that got us here is the one worth reporting
                pass
            raise

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        if not self.context.set_input_shape(self.input_name, shape):
            raise RtsegError(f"TensorRT refused input shape {shape}")

    def _nbytes(self, name: str) -> int:
        shape = tuple(self.context.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise RtsegError(f"output {name} has a data-dependent shape {shape}, which rtseg does not handle")
        return int(np.prod(shape, dtype=np.int64)) * self.dtypes[name].itemsize

    def bind(self, shape: tuple[int, ...]) -> None:
        """Set the input shape (when it changed) and make numpy views of the pinned buffers at that shape."""
        if shape == self.shape:
            return
        self._set_shape(shape)
        self.views = {}
        for name in [self.input_name, *self.outputs]:
            tensor_shape = tuple(self.context.get_tensor_shape(name))
            nbytes = int(np.prod(tensor_shape, dtype=np.int64)) * self.dtypes[name].itemsize
            self.views[name] = self.pinned[name][:nbytes].view(self.dtypes[name]).reshape(tensor_shape)
        self.shape = shape

    def run(self, image: np.ndarray, pinned_input: bool) -> dict[str, np.ndarray]:
        cuda = self.cuda
        if pinned_input:  # already page-locked (a buffer from `host_buffer`): no host copy at all
            source = image.ctypes.data
        else:
            np.copyto(self.views[self.input_name], image, casting="same_kind")
            source = self.views[self.input_name].ctypes.data
        cuda.upload(self.device[self.input_name], source, self.views[self.input_name].nbytes, self.stream)
        if not self.context.execute_async_v3(int(self.stream)):
            raise RtsegError("TensorRT inference failed")
        for name in self.outputs:
            cuda.download(self.views[name].ctypes.data, self.device[name], self.views[name].nbytes, self.stream)
        cuda.synchronize(self.stream)  # this thread's stream only: other threads' frames keep running
        # copies: the pinned buffers take this thread's next frame while this one is still being drawn
        return {name: self.views[name].copy() for name in self.outputs}

    def close(self) -> None:
        """Free everything, even when one call fails (the first failure is raised after the rest is freed).
        The stream is synchronized first: a frame that failed half-way may still have copies queued on it."""
        device, pinned, stream = self.device, self.pinned, self.stream
        self.device, self.pinned, self.views, self.stream = {}, {}, {}, None
        calls: list[Callable[..., object]] = [lambda: self.cuda.synchronize(stream)] if stream is not None else []
        calls += [lambda: setattr(self, "context", None)]  # destroyed once nothing of it is queued any more
        calls += [lambda p=p: self.cuda.free(p) for p in device.values()]
        calls += [lambda a=a: self.cuda.free_pinned(a) for a in pinned.values()]
        calls += [lambda: self.cuda.destroy_stream(stream)] if stream is not None else []
        _call_all(calls)


def _call_all(calls) -> None:
    """Run every call; raise the first exception once all have run."""
    first = None
    for call in calls:
        try:
            call()
        except Exception as e:
            first = first or e
    if first is not None:
        raise first


def open_engine(
    backend: "TensorRTBackend",
    model_path,
    precision: str,
    profile: ShapeProfile | None,
    cache_dir,
    info: ModelInfo | None,
    input_size: tuple[int, int] | None,
) -> None:
    """`backend`'s engine: what to build it from (engine_source), for which shapes, from the cache or built now
    (saying so: it takes minutes), deserialized, with its input and output tensors read off it."""
    trt, cudart = import_tensorrt()
    backend.trt, backend.cuda = trt, _Cuda(cudart)
    device = backend.cuda.device()
    if info is None:  # called with a bare path: read the file's metadata once, here
        from ..core.modelinfo import resolve_model

        info = resolve_model(str(model_path))
    source = engine_source(info, precision)
    if source.static_size:
        if profile is not None and not profile.min == profile.max == source.static_size:
            raise RtsegError(
                f"model {info.name} only accepts {source.static_size[0]}x{source.static_size[1]} "
                f"inputs, not the shape profile {profile.label()}"
            )
        profile = ShapeProfile.fixed(source.static_size)
    backend.profile = profile or default_profile(info, input_size)
    backend.precision = source.precision
    backend.cache = EngineCache(cache_dir)
    backend.key, backend.model_name = engine_key(trt, source, device, backend.profile), info.name
    backend.runtime = trt.Runtime(trt_logger(trt))  # the process's one logger, which outlives every engine
    loaded: dict[str, Any] = {}

    def deserializes(data: bytes) -> bool:
        loaded["engine"] = backend.runtime.deserialize_cuda_engine(data)
        return loaded["engine"] is not None

    def build() -> bytes:
        # a warning, so that even --quiet says why the start takes minutes
        log.warning(
            f"rtseg: building a TensorRT {source.precision} engine for {info.name} "
            f"({backend.profile.label()}); "
            "this takes a minute or two, once per GPU and TensorRT version"
        )
        return build_engine(trt, source, backend.key, backend.cache)

    data, built = backend.cache.get_or_build(backend.key, info.name, build, deserializes, {"model": info.name})
    if built and not deserializes(data):
        raise RtsegError(f"TensorRT built an engine for {info.name} but cannot load it")
    engine = backend.engine = loaded["engine"]
    backend.engine_bytes = len(data)
    backend.input_name = source.input_name
    backend.output_names = [
        n for n in (engine.get_tensor_name(i) for i in range(engine.num_io_tensors)) if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT
    ]
    backend.input_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(backend.input_name)))
    backend.name = f"tensorrt-{backend.precision}"


class TensorRTBackend:
    """A TensorRT engine of one model (built on first use, then from the cache), callable from many threads.

    `precision`: fp32 | fp16 | int8 (see the module docstring); `profile`: the input sizes the engine takes
    (default: every size the selector may use, plus `input_size`, tuned for `input_size` or the model's own).
    """

    # set by `open_engine` (tensorrt and cuda-python are untyped: their objects are Any)
    trt: Any  # the tensorrt module
    cuda: _Cuda
    profile: ShapeProfile
    precision: str
    cache: EngineCache
    key: EngineKey
    model_name: str
    runtime: Any
    engine_bytes: int
    input_name: str
    output_names: list[str]
    input_dtype: np.dtype
    name: str

    def __init__(
        self,
        model_path: str | Path,
        precision: str = "fp16",
        profile: ShapeProfile | None = None,
        cache_dir: str | Path | None = None,
        info: ModelInfo | None = None,
        input_size: tuple[int, int] | None = None,
        **_,
    ):
        self._lanes: list[_Lane] = []
        self._lanes_lock = threading.Lock()
        self._idle = threading.Condition(self._lanes_lock)  # notified when no `infer` is running any more
        self._busy = 0  # `infer` calls running now
        self._closed = False
        self._local = threading.local()
        self._host_buffers: list[np.ndarray] = []
        self.engine: Any = None
        try:
            open_engine(self, model_path, precision, profile, cache_dir, info, input_size)
            # one inference now, so that a context, buffer or kernel that fails does so while the caller can
            # still fall back to the CPU (this thread's lane is made here; other threads make theirs)
            self.infer(np.zeros((1, 3, *self.profile.opt), self.input_dtype))
        except BaseException as e:
            self._close_quietly()
            if isinstance(e, RtsegError) or not isinstance(e, Exception):
                raise
            # an API this TensorRT lacks (AttributeError), a driver error surfacing as RuntimeError, ...
            raise RtsegError(f"TensorRT could not load the model ({_first_line(e)})") from e

    @property
    def engine_path(self) -> Path:
        return self.cache.path(self.key, self.model_name)

    def static_size(self) -> tuple[int, int] | None:
        p = self.profile
        return as_shape(p.opt) if p.min == p.opt == p.max else None

    def host_buffer(self, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """A page-locked array for model inputs: `infer` uploads straight from it, skipping the copy into its own
        pinned buffer (a preprocessor's pool can allocate from here). Freed by `close`."""
        dtype = np.dtype(dtype)
        raw = self.cuda.pinned(int(np.prod(shape)) * dtype.itemsize)
        with self._lanes_lock:
            self._host_buffers.append(raw)
        return raw.view(dtype).reshape(shape)

    def _is_pinned(self, image: np.ndarray) -> bool:
        if image.dtype != self.input_dtype or not image.flags.c_contiguous:
            return False
        start = image.ctypes.data
        return any(b.ctypes.data <= start and start + image.nbytes <= b.ctypes.data + b.nbytes for b in self._host_buffers)

    def _lane(self) -> _Lane:
        """This thread's lane: its own, else one whose thread has ended (a pipeline run's inference threads
        end with the run; the next run's threads take their lanes over instead of adding contexts), else a
        new one."""
        lane = getattr(self._local, "lane", None)
        if lane is not None:
            return lane
        me = threading.current_thread()
        with self._lanes_lock:
            lane = next((la for la in self._lanes if not la.owner.is_alive()), None)
            if lane is not None:
                lane.owner = me
        if lane is None:
            lane = _Lane(self.engine, self.cuda, self.input_name, self.output_names, self.profile, self.trt)
            lane.owner = me
            with self._lanes_lock:
                self._lanes.append(lane)
        self._local.lane = lane
        return lane

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
            raise RtsegError(f"the TensorRT backend takes one (1, 3, H, W) image, not {image.shape}")
        if not self.profile.contains(image.shape[2:]):
            raise RtsegError(f"input {image.shape[2]}x{image.shape[3]} is outside the engine's shape profile {self.profile.label()}")
        with self._idle:  # `close` waits for the calls counted here before it frees their buffers
            if self._closed or self.engine is None:
                raise RtsegError("the TensorRT backend is closed")
            self._busy += 1
        try:
            lane = self._lane()
            lane.bind(tuple(image.shape))
            return lane.run(image, self._is_pinned(image))
        except RtsegError:
            raise
        except Exception as e:
            raise RtsegError(f"TensorRT inference failed ({_first_line(e)})") from e
        finally:
            with self._idle:
                self._busy -= 1
                if not self._busy:
                    self._idle.notify_all()

    def discard_engine(self) -> None:
        """Remove this backend's engine from the cache (the INT8 gate refused it)."""
        self.cache.discard(self.key, self.model_name)

    def _close_quietly(self) -> None:
        try:
            if hasattr(self, "cuda"):
                self.close()
        except Exception:  # already failing: the first error is the one worth a line
            pass

    def close(self, timeout: float = CLOSE_WAIT_S) -> None:
        """Free every thread's context, stream and buffers, and the host buffers handed out. Calls still
        running in other threads are waited for (up to `timeout` seconds): freeing memory a thread is copying
        from would crash the process, so if they do not finish the memory is left allocated instead.
        `infer` after `close` is an RtsegError."""
        with self._idle:
            self._closed = True
            if not self._idle.wait_for(lambda: self._busy == 0, timeout):
                log.warning(f"rtseg: TensorRT inference still running after {timeout:g} s; its GPU memory is left allocated")
                return
            lanes, self._lanes = self._lanes, []
            buffers, self._host_buffers = self._host_buffers, []
        try:
            _call_all([lane.close for lane in lanes] + [lambda b=b: self.cuda.free_pinned(b) for b in buffers])
        finally:
            self.engine = None  # after the contexts: an engine outlives the contexts made from it
            self._local = threading.local()
