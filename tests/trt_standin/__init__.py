"""A strict, CPU-only stand-in for `tensorrt` and `cuda.bindings.runtime`, for tests of the TensorRT backend.

Where the names come from. `tensorrt-11.4.0.106.json` and `tensorrt-10.0.1.json` list every public name
of the real TensorRT Python bindings: module level, every class's members, every enum's members and values.
They were made from NVIDIA's own wheels, `pip download tensorrt-cu13-bindings==11.4.0.106` (and
`tensorrt-cu12-bindings==10.0.1`) with `--no-deps`: their `tensorrt_bindings/tensorrt.so` was imported
outside any environment against three empty shared libraries standing in for libnvinfer / libnvonnxparser /
libnvinfer_plugin (the module's only undefined symbols are nine `create*_INTERNAL`/plugin-registry entry
points, never called by an import), and `dir()` of the module, of each class (nested ones such as
ILogger.Severity too) and `__members__` of each enum were written out. `import tensorrt` re-exports that
module (`from tensorrt_bindings import *`) plus `__version__`. Nothing was installed in the venv.

How strict. Accessing a name the list does not have raises AttributeError, as the real module does, so code
calling an API TensorRT 11 removed (BuilderFlag.FP16, IBuilderConfig.int8_calibrator, set_calibration_profile,
IInt8EntropyCalibrator2, ICudaEngine.device_memory_size...) fails here too. A listed name that is not
simulated raises NotImplementedError: the stand-in says what it lacks instead of pretending.

    from trt_standin import install
    standin = install(monkeypatch)              # TensorRT 11.4 API; install(monkeypatch, "10.0.1") for 10.x
    standin.machine.devices = []                # no GPU
    standin.stats.builds                        # engines built in this process
    standin.stats.build_warnings = ["..."]      # what the builder warns about, through TensorRT's one logger

Without `monkeypatch` (a subprocess), `install()` replaces the modules for the rest of the process.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from dataclasses import dataclass

from . import cudart_sim, tensorrt_sim
from .strict import CURRENT, StrictModule, load_api

VERSIONS = ("11.4.0.106", "10.0.1")


@dataclass
class StandIn:
    tensorrt: types.ModuleType
    runtime: types.ModuleType
    machine: cudart_sim.Machine
    stats: tensorrt_sim.Stats


def _tensorrt_module(version: str) -> types.ModuleType:
    load_api(version)
    module = StrictModule("tensorrt")
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    module.__version__ = CURRENT["version"]
    for cls in tensorrt_sim.ENUMS:
        cls._install_members()
    tensorrt_sim.ILogger._install_members()
    for name, cls in tensorrt_sim.SIMULATED.items():
        if "." not in name:
            setattr(module, name, cls)
    module.nptype = tensorrt_sim.nptype
    for alias, member in (
        ("float32", "FLOAT"),
        ("float16", "HALF"),
        ("int8", "INT8"),
        ("int32", "INT32"),
        ("int64", "INT64"),
        ("uint8", "UINT8"),
        ("bool", "BOOL"),
    ):
        setattr(module, alias, getattr(tensorrt_sim.DataType, member))
    undeclared = [
        f"{name}.{m}"
        for name, cls in tensorrt_sim.SIMULATED.items()
        for m in vars(cls)
        if not m.startswith("_") and m not in CURRENT["classes"].get(name, set())
    ]
    undeclared += [n for n in vars(module) if not n.startswith("_") and n not in CURRENT["module"]]
    assert not undeclared, f"the stand-in offers names TensorRT {version} does not have: {undeclared}"
    return module


def install(monkeypatch=None, version: str = "11.4.0.106") -> StandIn:
    """Put the stand-ins in sys.modules as `tensorrt`, `cuda`, `cuda.bindings`, `cuda.bindings.runtime`."""
    machine = cudart_sim.Machine()
    stats = tensorrt_sim.STATS
    stats.reset()  # a new process: no builds, no logger yet
    stats.machine = machine
    trt = _tensorrt_module(version)
    runtime = cudart_sim.make_module(machine)
    cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    cuda.__path__, bindings.__path__ = [], []
    cuda.bindings, bindings.runtime = bindings, runtime
    modules = {"tensorrt": trt, "cuda": cuda, "cuda.bindings": bindings, "cuda.bindings.runtime": runtime}
    for name, module in modules.items():
        if monkeypatch is not None:
            monkeypatch.setitem(sys.modules, name, module)
        else:
            sys.modules[name] = module
    return StandIn(trt, runtime, machine, stats)
