"""The MobileNetV2 encoder every rtseg model shares: torchvision's network cut at strides 4, 8, 16 and 32."""

from __future__ import annotations

from typing import Any

import torch
import torchvision
from torch import nn

# Indices into torchvision's MobileNetV2 `features` where the output stride changes.
# The block at index i is the first block whose output is at the named stride.
_STRIDE4_END = 4  # features[:4]  -> stride 4  (24 channels at width 1.0)
_STRIDE8_END = 7  # features[:7]  -> stride 8  (32 channels)
_STRIDE16_END = 14  # features[:14] -> stride 16 (96 channels)
_LAST = 18  # features[:18] -> stride 32 (320 channels); the 1280-channel 1x1 conv is dropped


def _out_channels(blocks: nn.Sequential) -> int:
    last: Any = blocks[-1]  # a torchvision block (untyped): InvertedResidual, or conv-BN-ReLU6 as a Sequential
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


def _torchvision(width: float, weights) -> torchvision.models.MobileNetV2:
    return torchvision.models.mobilenet_v2(weights=weights, width_mult=width)


def _slim(width: float, weights) -> torchvision.models.MobileNetV2:
    from .tflite_mnv2 import slim_mobilenet_v2

    return slim_mobilenet_v2(width)


# encoder layout (`ModelSpec.encoder`) -> the MobileNetV2 network it is cut from: torchvision's, or TF-Slim's
# (whose pretrained TFLite weights load exactly); a whole other network (edgetpu) is in models/__init__.py
LAYOUTS = {"tv": _torchvision, "slim": _slim}


class MobileNetV2Encoder(nn.Module):
    """torchvision's MobileNetV2 features split at strides 4, 8, 16 and 16/32.

    `layout="slim"` builds the network as Google's TF-Slim files have it (channel rounding, DeepLab's
    dilation, 'SAME' padding of strided convolutions), so their pretrained weights load exactly.
    """

    def __init__(self, width: float = 1.0, output_stride: int = 16, pretrained: str | None = None, layout: str = "tv"):
        super().__init__()
        weights = None
        if pretrained == "imagenet":
            if width != 1.0 or layout != "tv":
                raise ValueError("torchvision's ImageNet weights exist only for width 1.0, torchvision layout")
            weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V2
        if layout not in LAYOUTS:
            raise ValueError(f"unknown encoder layout {layout!r} (one of {', '.join(LAYOUTS)})")
        f: nn.Sequential = LAYOUTS[layout](width, weights).features
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
