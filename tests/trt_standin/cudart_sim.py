"""A stand-in for cuda-python's `cuda.bindings.runtime`: the calls rtseg's TensorRT backend makes, on the CPU.

"Device memory" is host memory the stand-in owns, so pointers are real addresses; copies and kernels
queued on a stream run only when that stream is synchronized, in order, as they would on a GPU. That is
what makes sharing buffers or streams between threads visible in a test: a thread that filled a shared
pinned buffer after another thread queued its upload gives the other thread its frame.

Names follow cuda-bindings 12.8 and 13.5 (`hasattr` checked on both wheels; cudaDriverGetVersion and
cudaRuntimeGetVersion on 13.5, CUDA runtime calls since CUDA 2); return values are (cudaError_t, value...)
tuples as there. Anything else raises AttributeError.

The driver: cuda-bindings 13.5 without a driver answers cudaGetDeviceCount with cudaErrorInsufficientDriver
and cudaDriverGetVersion with (cudaSuccess, 0); with a driver older than its CUDA major, the same error, and
the driver's version. `Machine.driver_version` / `runtime_version` (as CUDA encodes them: 12040 is 12.4) and
`driver_ok` (False: no driver at all) make either.
"""

from __future__ import annotations

import ctypes
import enum
import itertools
import threading
import types

import numpy as np

SIMULATED = (
    "cudaError_t",
    "cudaMemcpyKind",
    "cudaStream_t",
    "cudaDeviceProp",
    "cudaStreamNonBlocking",
    "cudaDriverGetVersion",
    "cudaRuntimeGetVersion",
    "cudaGetDeviceCount",
    "cudaGetDeviceProperties",
    "cudaGetErrorName",
    "cudaStreamCreateWithFlags",
    "cudaStreamDestroy",
    "cudaStreamSynchronize",
    "cudaMalloc",
    "cudaFree",
    "cudaMallocHost",
    "cudaFreeHost",
    "cudaMemcpyAsync",
)


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidResourceHandle = 400


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class cudaStream_t:
    def __init__(self, handle: int = 0):
        self._handle = handle

    def __int__(self) -> int:
        return self._handle


class cudaDeviceProp:
    def __init__(self, name: bytes = b"", major: int = 0, minor: int = 0):
        self.name, self.major, self.minor = name, major, minor


cudaStreamNonBlocking = 1
OK = cudaError_t.cudaSuccess


class Machine:
    """What the fake CUDA runtime knows: devices, allocations, streams, and hooks for tests."""

    def __init__(
        self, devices=(("NVIDIA Stand-In GPU", 8, 9),), driver_ok: bool = True, driver_version: int = 13000, runtime_version: int = 13050
    ):
        self.devices, self.driver_ok = list(devices), driver_ok
        self.driver_version, self.runtime_version = driver_version, runtime_version
        self.device_memory: dict[int, np.ndarray] = {}
        self.pinned_memory: dict[int, np.ndarray] = {}
        self.streams: dict[int, list] = {}
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.before_sync = None  # a test may make synchronisation wait (e.g. on a Barrier)
        self.pageable_copies = 0  # copies whose host side was not page-locked
        self.uploads_from = []  # host addresses uploads read from

    def _find(self, table: dict[int, np.ndarray], pointer: int, nbytes: int) -> bool:
        return any(p <= pointer and pointer + nbytes <= p + a.nbytes for p, a in table.items())

    def device_view(self, pointer: int, nbytes: int) -> np.ndarray:
        """The bytes of device memory at `pointer` (a kernel's input or output); it must lie in one allocation."""
        if not self._find(self.device_memory, pointer, nbytes):
            raise RuntimeError(f"illegal address: {nbytes} bytes at {pointer:#x} are not device memory")
        return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(pointer))

    def enqueue(self, handle: int, work) -> None:
        with self.lock:
            if handle not in self.streams:
                raise RuntimeError(f"invalid stream handle {handle}")
            self.streams[handle].append(work)

    def driver_usable(self) -> bool:
        return self.driver_ok and self.driver_version // 1000 >= self.runtime_version // 1000

    def leaks(self) -> dict[str, int]:
        return {"device": len(self.device_memory), "pinned": len(self.pinned_memory), "streams": len(self.streams)}


def make_module(machine: Machine) -> types.ModuleType:
    """The `cuda.bindings.runtime` stand-in bound to `machine`."""

    def cudaDriverGetVersion():
        return OK, machine.driver_version if machine.driver_ok else 0

    def cudaRuntimeGetVersion():
        return OK, machine.runtime_version

    def cudaGetDeviceCount():
        if not machine.driver_usable():
            return cudaError_t.cudaErrorInsufficientDriver, None
        if not machine.devices:
            return cudaError_t.cudaErrorNoDevice, 0
        return OK, len(machine.devices)

    def cudaGetDeviceProperties(device: int):
        if not machine.driver_usable() or device >= len(machine.devices):
            return cudaError_t.cudaErrorInvalidValue, None
        name, major, minor = machine.devices[device]
        return OK, cudaDeviceProp(name.encode(), major, minor)

    def cudaGetErrorName(error):
        return OK, cudaError_t(error).name.encode()

    def cudaStreamCreateWithFlags(flags: int):
        with machine.lock:
            handle = next(machine.ids)
            machine.streams[handle] = []
        return OK, cudaStream_t(handle)

    def cudaStreamDestroy(stream):
        with machine.lock:
            found = machine.streams.pop(int(stream), None) is not None
        return ((OK if found else cudaError_t.cudaErrorInvalidResourceHandle),)

    def cudaStreamSynchronize(stream):
        if machine.before_sync is not None:
            machine.before_sync()
        with machine.lock:
            if int(stream) not in machine.streams:
                return (cudaError_t.cudaErrorInvalidResourceHandle,)
            work, machine.streams[int(stream)] = machine.streams[int(stream)], []
        for job in work:
            job()
        return (OK,)

    def _allocate(table, nbytes: int):
        array = np.zeros(int(nbytes), np.uint8)
        with machine.lock:
            table[array.ctypes.data] = array
        return OK, array.ctypes.data

    def _release(table, pointer):
        with machine.lock:
            found = table.pop(int(pointer), None) is not None
        return ((OK if found else cudaError_t.cudaErrorInvalidValue),)

    def cudaMemcpyAsync(dst, src, count, kind, stream):
        dst, src, count = int(dst), int(src), int(count)
        if kind == cudaMemcpyKind.cudaMemcpyHostToDevice:
            device, host = dst, src
        elif kind == cudaMemcpyKind.cudaMemcpyDeviceToHost:
            device, host = src, dst
        else:
            return (cudaError_t.cudaErrorInvalidValue,)
        if not machine._find(machine.device_memory, device, count) or machine._find(machine.device_memory, host, 1):
            return (cudaError_t.cudaErrorInvalidValue,)
        if not machine._find(machine.pinned_memory, host, count):
            machine.pageable_copies += 1
        if kind == cudaMemcpyKind.cudaMemcpyHostToDevice:
            machine.uploads_from.append(host)
        try:
            machine.enqueue(int(stream), lambda: ctypes.memmove(dst, src, count))
        except RuntimeError:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        return (OK,)

    module = types.ModuleType("cuda.bindings.runtime")
    module.__dict__.update(
        cudaError_t=cudaError_t,
        cudaMemcpyKind=cudaMemcpyKind,
        cudaStream_t=cudaStream_t,
        cudaDeviceProp=cudaDeviceProp,
        cudaStreamNonBlocking=cudaStreamNonBlocking,
        cudaDriverGetVersion=cudaDriverGetVersion,
        cudaRuntimeGetVersion=cudaRuntimeGetVersion,
        cudaGetDeviceCount=cudaGetDeviceCount,
        cudaGetDeviceProperties=cudaGetDeviceProperties,
        cudaGetErrorName=cudaGetErrorName,
        cudaStreamCreateWithFlags=cudaStreamCreateWithFlags,
        cudaStreamDestroy=cudaStreamDestroy,
        cudaStreamSynchronize=cudaStreamSynchronize,
        cudaMalloc=lambda nbytes: _allocate(machine.device_memory, nbytes),
        cudaFree=lambda pointer: _release(machine.device_memory, pointer),
        cudaMallocHost=lambda nbytes: _allocate(machine.pinned_memory, nbytes),
        cudaFreeHost=lambda pointer: _release(machine.pinned_memory, pointer),
        cudaMemcpyAsync=cudaMemcpyAsync,
    )
    assert set(SIMULATED) == {k for k in module.__dict__ if not k.startswith("_")}
    return module
