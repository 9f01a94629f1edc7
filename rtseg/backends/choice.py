"""`--backend auto`: TensorRT where it can run, ONNX Runtime's CUDA provider next, the CPU otherwise.

Probing is cheap and needs neither PyTorch nor TensorRT: the GPU is asked for through the CUDA driver
library itself, so a machine without NVIDIA's driver answers "no GPU" in microseconds.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass, field


@dataclass
class Platform:
    gpu: str | None = None                    # first CUDA device's name, None when there is none
    tensorrt: str | None = None               # installed TensorRT version
    ort_providers: list[str] = field(default_factory=list)


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


def probe_platform() -> Platform:
    import onnxruntime

    try:
        import tensorrt

        trt = tensorrt.__version__
    except Exception:  # absent, or a broken install (missing libnvinfer): both mean no TensorRT
        trt = None
    return Platform(cuda_device_name(), trt, onnxruntime.get_available_providers())


def choose_backend(platform: Platform) -> tuple[str, str]:
    """(backend kind, one line saying why) for `--backend auto`."""
    if platform.gpu and platform.tensorrt:
        return "tensorrt", f"TensorRT {platform.tensorrt} on {platform.gpu}"
    if platform.gpu and "CUDAExecutionProvider" in platform.ort_providers:
        return "onnxruntime-cuda", (f"ONNX Runtime CUDA on {platform.gpu} (TensorRT not installed: "
                                    "pip install 'rtseg[tensorrt]' for the fastest path)")
    if platform.gpu:
        return "onnxruntime", (f"ONNX Runtime on the CPU: {platform.gpu} found, but neither TensorRT nor "
                               "onnxruntime-gpu is installed (pip install 'rtseg[tensorrt]')")
    return "onnxruntime", "ONNX Runtime on the CPU (no NVIDIA GPU found)"


def resolve_backend(kind: str, platform: Platform | None = None) -> tuple[str, str | None]:
    """The backend to load for `kind`; the reason is given only when `auto` decided."""
    if kind != "auto":
        return kind, None
    return choose_backend(platform or probe_platform())
