"""`--backend auto`: TensorRT where it can run, ONNX Runtime's CUDA provider next, the CPU otherwise.

The GPU is asked for first, through the CUDA driver library itself, so a machine without NVIDIA's driver
answers "no GPU" in microseconds and never imports TensorRT. With a GPU, TensorRT counts only when it
really works here (`probe_tensorrt`: a supported version with the calls rtseg makes, a CUDA device through
cuda-python, a TensorRT runtime created on it): "it imports" is not enough, a TensorRT 8, an 11 missing a
call or a driver too old for the CUDA bindings would otherwise be chosen and fail at the first frame.
"""

from __future__ import annotations

import ctypes
import importlib.util
from dataclasses import dataclass, field


@dataclass
class Platform:
    gpu: str | None = None  # first CUDA device's name, None when there is none
    tensorrt: str | None = None  # TensorRT version, when the probe found it usable
    ort_providers: list[str] = field(default_factory=list)
    tensorrt_problem: str | None = None  # why an installed TensorRT cannot be used here


def cuda_device_name() -> str | None:
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    count, name = ctypes.c_int(0), ctypes.create_string_buffer(256)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return None
    if cuda.cuDeviceGetName(name, len(name), 0) != 0:
        return "CUDA device 0"
    return name.value.decode(errors="replace")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module in sys.modules without a spec
        return True


def probe_platform() -> Platform:
    import onnxruntime

    gpu, trt, problem = cuda_device_name(), None, None
    if gpu:  # without a GPU TensorRT cannot run, so it is not even imported
        from .tensorrt import probe_tensorrt

        trt, why = probe_tensorrt()
        if trt is None and _installed("tensorrt"):
            problem = why
    return Platform(gpu, trt, onnxruntime.get_available_providers(), problem)


def choose_backend(platform: Platform) -> tuple[str, str]:
    """(backend kind, one line saying why) for `--backend auto`."""
    if platform.gpu and platform.tensorrt:
        return "tensorrt", f"TensorRT {platform.tensorrt} on {platform.gpu}"
    missing = (
        f"TensorRT unusable: {platform.tensorrt_problem}"
        if platform.tensorrt_problem
        else "TensorRT not installed: pip install 'rtseg[tensorrt]' for the fastest path"
    )
    if platform.gpu and "CUDAExecutionProvider" in platform.ort_providers:
        return "onnxruntime-cuda", f"ONNX Runtime CUDA on {platform.gpu} ({missing})"
    if platform.gpu:
        return "onnxruntime", (
            f"ONNX Runtime on the CPU: {platform.gpu} found, but neither TensorRT nor onnxruntime-gpu is usable ({missing})"
        )
    return "onnxruntime", "ONNX Runtime on the CPU (no NVIDIA GPU found)"


def resolve_backend(kind: str, platform: Platform | None = None) -> tuple[str, str | None]:
    """The backend to load for `kind`; the reason is given only when `auto` decided."""
    if kind != "auto":
        return kind, None
    return choose_backend(platform or probe_platform())
