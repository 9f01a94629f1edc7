"""MobileNetV2-backbone segmentation models.

Every model is a fully convolutional net: a MobileNetV2 encoder (torchvision's, any width) that
downsamples to stride 16 or 32, and a light decoder that brings the prediction back to the input size
by bilinear interpolation (no transpose convolutions, so no checkerboard artifacts).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import cbr, separable
from .encoder import MobileNetV2Encoder

Head = str  # a name in SEG_HEADS: "lraspp", "deeplabv3plus", or one added by `register_head`
# head name -> factory(encoder channels by stride, classes, output stride, skip stride): a new head is a class
# and one `register_head` line, nothing elsewhere (`ModelSpec.head` takes any registered name)
SEG_HEADS: dict[str, Callable[[dict[int, int], int, int, int], nn.Module]] = {}


def register_head(name: str):
    """Make a segmentation head buildable by name (`rtseg train --head NAME`)."""

    def add(factory):
        SEG_HEADS[name] = factory
        return factory

    return add


class LRASPPHead(nn.Module):
    """Lite R-ASPP (MobileNetV3 paper): a 1x1 branch gated by global context, plus a stride-8 skip."""

    def __init__(self, high_ch: int, low_ch: int, num_classes: int, inter: int = 128):
        super().__init__()
        self.cbr = cbr(high_ch, inter)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_ch, inter, 1), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_ch, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter, num_classes, 1)

    def forward(self, feats: dict[int, torch.Tensor], high_stride: int) -> torch.Tensor:
        high, low = feats[high_stride], feats[8]
        x = self.cbr(high) * self.gate(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)


@register_head("lraspp")
def _lraspp(ch: dict[int, int], num_classes: int, output_stride: int, skip_stride: int) -> nn.Module:
    return LRASPPHead(ch[32], ch[8], num_classes)


class ASPPLite(nn.Module):
    """ASPP with depthwise-separable dilated branches and an image-pooling branch."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList([cbr(cin, cout)] + [separable(cin, cout, r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), cbr(cin, cout))
        self.project = nn.Sequential(cbr(cout * (len(rates) + 2), cout), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        # expand_as keeps the pooled branch shape-dynamic in ONNX without a Resize op
        outs.append(self.pool(x).expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+ decoder, lite: ASPP on the deep features, fused with a shallow skip (U-Net/FCN-8s idea)."""

    def __init__(
        self, high_ch: int, skip_ch: int, num_classes: int, skip_stride: int, inter: int = 128, rates: tuple[int, ...] = (6, 12, 18)
    ):
        super().__init__()
        self.skip_stride = skip_stride
        self.aspp = ASPPLite(high_ch, inter, rates)
        self.skip = cbr(skip_ch, 48)
        self.fuse = nn.Sequential(separable(inter + 48, inter), separable(inter, inter))
        self.classifier = nn.Conv2d(inter, num_classes, 1)

    def forward(self, feats: dict[int, torch.Tensor], high_stride: int) -> torch.Tensor:
        skip = feats[self.skip_stride]
        x = self.aspp(feats[high_stride])
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = self.fuse(torch.cat([x, self.skip(skip)], dim=1))
        return self.classifier(x)


@register_head("deeplabv3plus")
def _deeplabv3plus(ch: dict[int, int], num_classes: int, output_stride: int, skip_stride: int) -> nn.Module:
    rates = (6, 12, 18) if output_stride == 16 else (3, 6, 9)  # the same field of view at either stride
    return DeepLabV3PlusHead(ch[32], ch[skip_stride], num_classes, skip_stride, rates=rates)


class SegmentationNet(nn.Module):
    """Encoder + head; returns logits at the input resolution."""

    def __init__(
        self,
        num_classes: int = 11,
        width: float = 1.0,
        head: Head = "deeplabv3plus",
        output_stride: int = 16,
        skip_stride: int = 4,
        pretrained: str | None = None,
        layout: str = "tv",
    ):
        super().__init__()
        self.encoder = MobileNetV2Encoder(width, output_stride, pretrained, layout)
        ch = self.encoder.channels
        self.high_stride = 32
        if head not in SEG_HEADS:
            raise ValueError(f"unknown head {head!r} (one of {', '.join(SEG_HEADS)})")
        self.head: nn.Module = SEG_HEADS[head](ch, num_classes, output_stride, skip_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.encoder(x), self.high_stride)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
