"""ONNX Runtime backend (CPU by default; the CUDA provider when asked and available)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..core.errors import RtsegError


class OnnxRuntimeBackend:
    def __init__(self, model_path: str | Path, threads: int | None = None, providers: list[str] | None = None,
                 spin: bool = False, **_):
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
            self.session = ort.InferenceSession(str(model_path), so, providers=providers)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            raise RtsegError(f"cannot load model {model_path} with ONNX Runtime: {first[:200]}") from e
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
            first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            raise RtsegError(f"inference failed: {first[:300]}") from e
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        self.session = None


class OnnxRuntimeCudaBackend(OnnxRuntimeBackend):
    """ONNX Runtime's CUDA provider (onnxruntime-gpu); ORT keeps the CPU provider for unsupported nodes."""

    def __init__(self, model_path: str | Path, threads: int | None = None, **options):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RtsegError("ONNX Runtime here has no CUDA provider (pip install onnxruntime-gpu)")
        super().__init__(model_path, threads, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], **options)
