"""Layers every head shares: conv + batch norm + ReLU, and the depthwise-separable pair (MobileNet's idea)."""

from __future__ import annotations

from torch import nn


def cbr(cin: int, cout: int, k: int = 1, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    """Convolution (padded to keep the size), batch norm, ReLU."""
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def separable(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 (optionally dilated) then pointwise 1x1, each with BN + ReLU."""
    return nn.Sequential(cbr(cin, cin, 3, dilation, groups=cin), cbr(cin, cout, 1))
