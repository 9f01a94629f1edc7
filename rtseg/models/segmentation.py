"""MobileNetV2-backbone segmentation models.

Every model is a fully convolutional net: a MobileNetV2 encoder (torchvision's, any width) that
downsamples to stride 16 or 32, and a light decoder that brings the prediction back to the input size
by bilinear interpolation (no transpose convolutions, so no checkerboard artifacts).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

Head = Literal["lraspp", "deeplabv3plus"]

# Indices into torchvision's MobileNetV2 `features` where the output stride changes.
# The block at index i is the first block whose output is at the named stride.
_STRIDE4_END = 4    # features[:4]  -> stride 4  (24 channels at width 1.0)
_STRIDE8_END = 7    # features[:7]  -> stride 8  (32 channels)
_STRIDE16_END = 14  # features[:14] -> stride 16 (96 channels)
_LAST = 18          # features[:18] -> stride 32 (320 channels); the 1280-channel 1x1 conv is dropped


def _out_channels(blocks: nn.Sequential) -> int:
    last = blocks[-1]
    return last.out_channels if hasattr(last, "out_channels") else last[0].out_channels


def _dilate(blocks: nn.Sequential, dilation: int, first: int = 2) -> None:
    """Turn the stride-2 stage into a dilated stride-1 stage (DeepLab's output-stride trick).

    torchvision-layout encoders dilate the whole stage by 2 (`first=2`, as rtseg always has); TF-Slim's
    DeepLab keeps the stage's first block at rate 1 and dilates the ones after it (`first=1`), which the
    pretrained weights expect.
    """
    for i, block in enumerate(blocks):
        rate = first if i == 0 else dilation
        for m in block.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                m.stride = (1, 1)
                m.dilation = (rate, rate)
                m.padding = (rate, rate)


class MobileNetV2Encoder(nn.Module):
    """torchvision's MobileNetV2 features split at strides 4, 8, 16 and 16/32.

    `layout="slim"` builds the network as Google's TF-Slim files have it (channel rounding, DeepLab's
    dilation, 'SAME' padding of strided convolutions), so their pretrained weights load exactly.
    """

    def __init__(self, width: float = 1.0, output_stride: int = 16, pretrained: str | None = None,
                 layout: str = "tv"):
        super().__init__()
        weights = None
        if pretrained == "imagenet":
            if width != 1.0 or layout != "tv":
                raise ValueError("torchvision's ImageNet weights exist only for width 1.0, torchvision layout")
            weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V2
        if layout == "slim":
            from .tflite_mnv2 import slim_mobilenet_v2

            net = slim_mobilenet_v2(width)
        elif layout == "tv":
            net = torchvision.models.mobilenet_v2(weights=weights, width_mult=width)
        else:
            raise ValueError(f"unknown encoder layout {layout!r} (tv or slim)")
        f = net.features
        self.stage4 = f[:_STRIDE4_END]
        self.stage8 = f[_STRIDE4_END:_STRIDE8_END]
        self.stage16 = f[_STRIDE8_END:_STRIDE16_END]
        self.stage32 = f[_STRIDE16_END:_LAST]
        if output_stride == 16:
            _dilate(self.stage32, 2, first=1 if layout == "slim" else 2)
        elif output_stride != 32:
            raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
        if layout == "slim":
            from .tflite_mnv2 import use_tf_padding

            use_tf_padding(self)
        self.channels = {
            4: _out_channels(self.stage4),
            8: _out_channels(self.stage8),
            16: _out_channels(self.stage16),
            32: _out_channels(self.stage32),
        }

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        s4 = self.stage4(x)
        s8 = self.stage8(s4)
        s16 = self.stage16(s8)
        s32 = self.stage32(s16)
        return {4: s4, 8: s8, 16: s16, 32: s32}


def _cbr(cin: int, cout: int, k: int = 1, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _separable(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 (optionally dilated) then pointwise 1x1, each with BN + ReLU."""
    return nn.Sequential(_cbr(cin, cin, 3, dilation, groups=cin), _cbr(cin, cout, 1))


class LRASPPHead(nn.Module):
    """Lite R-ASPP (MobileNetV3 paper): a 1x1 branch gated by global context, plus a stride-8 skip."""

    def __init__(self, high_ch: int, low_ch: int, num_classes: int, inter: int = 128):
        super().__init__()
        self.cbr = _cbr(high_ch, inter)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_ch, inter, 1), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_ch, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter, num_classes, 1)

    def forward(self, feats: dict[int, torch.Tensor], high_stride: int) -> torch.Tensor:
        high, low = feats[high_stride], feats[8]
        x = self.cbr(high) * self.gate(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)


class ASPPLite(nn.Module):
    """ASPP with depthwise-separable dilated branches and an image-pooling branch."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList([_cbr(cin, cout)] + [_separable(cin, cout, r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), _cbr(cin, cout))
        self.project = nn.Sequential(_cbr(cout * (len(rates) + 2), cout), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        # expand_as keeps the pooled branch shape-dynamic in ONNX without a Resize op
        outs.append(self.pool(x).expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+ decoder, lite: ASPP on the deep features, fused with a shallow skip (U-Net/FCN-8s idea)."""

    def __init__(self, high_ch: int, skip_ch: int, num_classes: int, skip_stride: int,
                 inter: int = 128, rates: tuple[int, ...] = (6, 12, 18)):
        super().__init__()
        self.skip_stride = skip_stride
        self.aspp = ASPPLite(high_ch, inter, rates)
        self.skip = _cbr(skip_ch, 48)
        self.fuse = nn.Sequential(_separable(inter + 48, inter), _separable(inter, inter))
        self.classifier = nn.Conv2d(inter, num_classes, 1)

    def forward(self, feats: dict[int, torch.Tensor], high_stride: int) -> torch.Tensor:
        skip = feats[self.skip_stride]
        x = self.aspp(feats[high_stride])
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = self.fuse(torch.cat([x, self.skip(skip)], dim=1))
        return self.classifier(x)


class SegmentationNet(nn.Module):
    """Encoder + head; returns logits at the input resolution."""

    def __init__(self, num_classes: int = 11, width: float = 1.0, head: Head = "deeplabv3plus",
                 output_stride: int = 16, skip_stride: int = 4, pretrained: str | None = None, layout: str = "tv"):
        super().__init__()
        self.encoder = MobileNetV2Encoder(width, output_stride, pretrained, layout)
        ch = self.encoder.channels
        self.high_stride = 32
        if head == "lraspp":
            self.head: nn.Module = LRASPPHead(ch[32], ch[8], num_classes)
        elif head == "deeplabv3plus":
            rates = (6, 12, 18) if output_stride == 16 else (3, 6, 9)
            self.head = DeepLabV3PlusHead(ch[32], ch[skip_stride], num_classes, skip_stride, rates=rates)
        else:
            raise ValueError(f"unknown head {head!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.encoder(x), self.high_stride)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


class DetectionNet(nn.Module):
    """Encoder + CenterNet box head; returns the raw head outputs (see detection.decode)."""

    def __init__(self, num_det_classes: int = 3, width: float = 1.0, output_stride: int = 16,
                 pretrained: str | None = None, layout: str = "tv"):
        super().__init__()
        from .detection import CenterNetHead

        self.encoder = MobileNetV2Encoder(width, output_stride, pretrained, layout)
        self.det_head = CenterNetHead(self.encoder.channels, num_det_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.det_head(self.encoder(x))


class SegDetNet(SegmentationNet):
    """One encoder, two heads: class logits and boxes from a single forward pass."""

    def __init__(self, num_classes: int = 11, num_det_classes: int = 3, width: float = 1.0,
                 head: Head = "deeplabv3plus", output_stride: int = 16, pretrained: str | None = None,
                 layout: str = "tv"):
        super().__init__(num_classes, width, head, output_stride, pretrained=pretrained, layout=layout)
        from .detection import CenterNetHead

        self.det_head = CenterNetHead(self.encoder.channels, num_det_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(x)
        logits = F.interpolate(self.head(feats, self.high_stride), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"logits": logits, **self.det_head(feats)}
