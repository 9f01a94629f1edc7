"""What a deployed model computes, the same for ONNX export and the PyTorch backend: the argmax for the
class map, peak-picking decode for boxes, so only small results leave the runtime."""

from __future__ import annotations

import torch
from torch import nn

from ..core.tasks import has_det, has_seg
from .detection import decode


class ExportWrapper(nn.Module):
    """What the ONNX graph computes: argmax for the class map, peak-picking decode for boxes."""

    def __init__(self, model: nn.Module, task: str = "seg", top_k: int = 100):
        super().__init__()
        self.model, self.task, self.top_k = model, task, top_k

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        results = []
        if has_seg(self.task):
            logits = out if self.task == "seg" else out["logits"]
            results.append(logits.argmax(1).to(torch.uint8))
        if has_det(self.task):
            boxes, scores, labels = decode(out, self.top_k)
            results += [boxes, scores, labels.to(torch.int32)]
        return tuple(results)


def output_names(task: str) -> list[str]:
    return {"seg": ["mask"], "det": ["boxes", "scores", "labels"], "segdet": ["mask", "boxes", "scores", "labels"]}[task]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: nn.Module, input_size: tuple[int, int]) -> float:
    """Forward FLOPs at batch 1 (a multiply-add counts 2), convolutions and matmuls, from torch's counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, *input_size))
    return counter.get_total_flops() / 1e9
