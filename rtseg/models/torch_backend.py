"""PyTorch eager backend (`--backend torch`): the same model from the weights shipped beside its ONNX file (NAME.pt).

For comparisons (`rtseg bench`) and for users who want to stay in PyTorch; the outputs match the ONNX
graph's (argmax and box decoding included), so the rest of the pipeline cannot tell the difference.
It lives with the models because it rebuilds their networks; backends/ names it in its registry and imports
it only when it is chosen, so the backends floor itself imports no model code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.errors import RtsegError
from . import ModelSpec, build_model
from .deploy import ExportWrapper, output_names


class TorchBackend:
    def __init__(self, model_path: str | Path, threads: int | None = None, device: str | None = None, **_):
        weights = Path(model_path).with_suffix(".pt")
        if not weights.exists():
            raise RtsegError(f"the torch backend needs the PyTorch weights {weights} beside the ONNX file")
        ck = torch.load(weights, map_location="cpu", weights_only=False)
        spec = ModelSpec.from_dict(ck["spec"])
        model = build_model(spec)
        model.load_state_dict(ck["model"])
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if threads and self.device.type == "cpu":
            torch.set_num_threads(threads)
        self.model: ExportWrapper | None = ExportWrapper(model, spec.task).eval().to(self.device)  # None once closed
        self.output_names = output_names(spec.task)
        self.input_name = "image"
        self.name = f"torch-{self.device.type}"
        self._torch = torch

    @classmethod
    def from_module(cls, model, task: str = "seg", autocast=None) -> "TorchBackend":
        """A backend around a model in memory (training's validation): the same outputs as its ONNX export.
        With `autocast` (a torch dtype), the network runs in that precision and its outputs are cast back
        to float32 before the argmax and the box decoding."""
        self = cls.__new__(cls)
        self.device = next(model.parameters()).device
        net = model
        if autocast is not None:

            class Autocast(torch.nn.Module):  # the network in low precision, what follows it in float32
                def __init__(self):
                    super().__init__()
                    self.model = model

                def forward(self, x):
                    with torch.autocast(x.device.type, dtype=autocast):
                        out = self.model(x)
                    return {k: v.float() for k, v in out.items()} if isinstance(out, dict) else out.float()

            net = Autocast()
        self.model = ExportWrapper(net, task).eval()
        self.output_names = output_names(task)
        self.input_name, self.name, self._torch = "image", f"torch-{self.device.type}", torch
        return self

    def static_size(self) -> tuple[int, int] | None:
        return None  # eager PyTorch takes any size

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        if self.model is None:
            raise RtsegError("the torch backend is closed")
        with torch.inference_mode():
            outs = self.model(torch.from_numpy(image).to(self.device))
        return {n: o.cpu().numpy() for n, o in zip(self.output_names, outs)}

    def close(self) -> None:
        self.model = None
