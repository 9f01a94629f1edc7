"""One encoder, two heads: the class map and the boxes of a frame from a single forward pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .detection import CenterNetHead
from .segmentation import Head, SegmentationNet


class SegDetNet(SegmentationNet):
    """One encoder, two heads: class logits and boxes from a single forward pass."""

    def __init__(
        self,
        num_classes: int = 11,
        num_det_classes: int = 3,
        width: float = 1.0,
        head: Head = "deeplabv3plus",
        output_stride: int = 16,
        pretrained: str | None = None,
        layout: str = "tv",
    ):
        super().__init__(num_classes, width, head, output_stride, pretrained=pretrained, layout=layout)
        self.det_head = CenterNetHead(self.encoder.channels, num_det_classes)

    # a dict where SegmentationNet gives a tensor: callers tell the two apart by the model's task
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        feats = self.encoder(x)
        logits = F.interpolate(self.head(feats, self.high_stride), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"logits": logits, **self.det_head(feats)}
