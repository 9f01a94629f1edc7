"""ONNX Runtime backend (CPU by default; the CUDA provider when asked and available)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from ..core.errors import RtsegError


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__


def fixed_dims(shape: Sequence[int | str | None], size: tuple[int, int]) -> dict[str, int]:
    """The input's named free dimensions with the values one `size` (H, W) BGR-derived image gives them
    (batch 1, 3 channels); {} when a dimension has no name or one name would need two values (then nothing
    is fixed, and the session stays as free as the file)."""
    want = {0: 1, 1: 3, 2: size[0], 3: size[1]}
    dims: dict[str, int] = {}
    for i, d in enumerate(shape):
        if isinstance(d, int) or i not in want:
            continue
        if not isinstance(d, str) or not d or dims.get(d, want[i]) != want[i]:
            return {}
        dims[d] = want[i]
    return dims


@lru_cache(maxsize=64)
def _declared_input_shape(path: str, mtime_ns: int, size: int) -> tuple:
    """The first input's shape as the file declares it, read by a session without graph optimisation
    (about 25 ms); cached per file version, as the selector loads the same files again and again."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    probe = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return tuple(probe.get_inputs()[0].shape)


class OnnxRuntimeBackend:
    """One ONNX Runtime session. `fixed_size` (H, W): every call will be one image of that size (what a
    pipeline's slot does), so the input's free dimensions are fixed for ONNX Runtime's optimizer: shape
    arithmetic folds away and resizes get static sizes. Class maps and box labels are identical (box corners
    and scores move in float rounding, by 3e-5 at most); the held-out models ran 1.02-1.24x faster on one
    thread here, median 1.10, over two runs (benchmarks/results/static_shape_cpu.md and its history). Calls
    of another shape are refused."""

    def __init__(
        self,
        model_path: str | Path,
        threads: int | None = None,
        providers: list[str] | None = None,
        spin: bool = False,
        fixed_size: tuple[int, int] | None = None,
        **_,
    ):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # Spinning threads burn the cores that decode/draw/encode need between inferences in the pipeline.
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        so.log_severity_level = 3
        providers = providers or ["CPUExecutionProvider"]
        try:
            if fixed_size:
                stat = Path(model_path).stat()
                declared = _declared_input_shape(str(model_path), stat.st_mtime_ns, stat.st_size)
                for name, value in fixed_dims(declared, fixed_size).items():
                    so.add_free_dimension_override_by_name(name, value)
            self.session = ort.InferenceSession(str(model_path), so, providers=providers)
        except Exception as e:
            raise RtsegError(f"cannot load model {model_path} with ONNX Runtime: {_first_line(e)[:200]}") from e
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = inp.shape
        channels_ok = len(inp.shape) == 4 and (inp.shape[1] == 3 or not isinstance(inp.shape[1], int))
        if not channels_ok:
            raise RtsegError(f"model {model_path} takes input of shape {inp.shape}, not an image batch (N, 3, H, W)")
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.name = "onnxruntime-" + self.session.get_providers()[0].replace("ExecutionProvider", "").lower()

    def static_size(self) -> tuple[int, int] | None:
        """(H, W) when the model only accepts one input size, None when height and width are dynamic."""
        h, w = self.input_shape[2:]
        return (h, w) if isinstance(h, int) and isinstance(w, int) else None

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        try:
            outs = self.session.run(self.output_names, {self.input_name: image})
        except Exception as e:  # ORT's errors are long C++ traces; the user needs one line
            raise RtsegError(f"inference failed: {_first_line(e)[:300]}") from e
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        self.session = None


class OnnxRuntimeCudaBackend(OnnxRuntimeBackend):
    """ONNX Runtime's CUDA provider (onnxruntime-gpu); ORT keeps the CPU provider for unsupported nodes."""

    def __init__(self, model_path: str | Path, threads: int | None = None, **options):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RtsegError("ONNX Runtime here has no CUDA provider (pip install onnxruntime-gpu)")
        super().__init__(model_path, threads, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], **options)
