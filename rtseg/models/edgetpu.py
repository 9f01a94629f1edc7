"""DeepLab MobileNet-EdgeTPU as an rtseg architecture: built from a table, trainable, no TFLite file needed.

tflite_edgetpu.py builds the network from the operator list of Google's Cityscapes file; a checkpoint must
rebuild without that file, so the layout is written down here: TensorFlow's `mobilenet_v3.V3_EDGETPU` (the
early blocks fuse the 1x1 expansion and the depthwise into one full 3x3 convolution; later 3x3 and 5x5
depthwise blocks), channels times the depth multiplier (`width`, 0.75 in the file) rounded as TF rounds
them, DeepLab's output stride 16 (the stride-32 block at stride 1, the blocks after it dilated by 2), and the
ASPP-lite head (a 1x1 branch and image pooling, concatenated, projected to 128 channels, 1x1 logits).
tests/test_edgetpu_train.py checks the table against the file, layer by layer.

Every convolution is conv + batch norm + activation, like rtseg's other encoders, so it fine-tunes as they
do: the file's folded weights load as identity batch norms (exact in eval mode) that
`tflite_mnv2.unfold_batchnorm` then gives real statistics (it says why). Module names mirror the port's
(`stem`, `blocks.expanded_conv_K.layers.{expand,depthwise,project}`, `conv_1`, `aspp.{aspp0,image_pooling}`,
`projection`, `logits`), so the file's weights are placed by name.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import RtsegError
from .tflite_mnv2 import TFSamePad, conv_bias, set_identity_batchnorm

if TYPE_CHECKING:
    from .tflite_edgetpu import EdgeTPUDeepLab


class Block(NamedTuple):
    """One inverted residual of the table, channels at depth multiplier 1."""

    kernel: int
    stride: int
    expansion: int  # the inner width is expansion x the block's input channels
    channels: int  # output channels
    fused: bool  # expansion and depthwise as one full kxk convolution
    residual: bool = True  # where the shapes allow it; V3_EDGETPU turns it off for one block


# TensorFlow's models/research/slim/nets/mobilenet/mobilenet_v3.py, V3_EDGETPU (stem: 32 channels, 3x3 stride 2).
BLOCKS = (
    Block(3, 1, 1, 16, True),
    Block(3, 2, 8, 32, True),
    Block(3, 1, 4, 32, True),
    Block(3, 1, 4, 32, True),
    Block(3, 1, 4, 32, True),
    Block(3, 2, 8, 48, True),
    Block(3, 1, 4, 48, True),
    Block(3, 1, 4, 48, True),
    Block(3, 1, 4, 48, True),
    Block(3, 2, 8, 96, False),
    Block(3, 1, 4, 96, False),
    Block(3, 1, 4, 96, False),
    Block(3, 1, 4, 96, False),
    Block(3, 1, 8, 96, False, residual=False),
    Block(3, 1, 4, 96, False),
    Block(3, 1, 4, 96, False),
    Block(3, 1, 4, 96, False),
    Block(5, 2, 8, 160, False),
    Block(5, 1, 4, 160, False),
    Block(5, 1, 4, 160, False),
    Block(5, 1, 4, 160, False),
    Block(3, 1, 8, 192, False),
)
STEM, LAST, HEAD = 32, 1280, 128  # the last 1x1 keeps 1280 below width 1 (TF's finegrain_classification_mode)


def make_divisible(v: float, divisor: int = 8) -> int:
    """TF-Slim's channel rounding: the nearest multiple of `divisor`, never more than 10% below `v`."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvBNAct(nn.Sequential):
    """conv (no bias) -> batch norm -> ReLU (or nothing), padded as TF's 'SAME' pads."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, dilation: int = 1, groups: int = 1, act: bool = True):
        conv = nn.Conv2d(cin, cout, k, stride=stride, dilation=dilation, groups=groups, bias=False)
        span = (k - 1) * dilation
        padded: nn.Conv2d | TFSamePad = conv
        if stride > 1:  # TF puts the odd pixel of padding after; symmetric padding cannot
            padded = TFSamePad(conv)
        else:
            conv.padding = (span // 2, span // 2)
        super().__init__(OrderedDict(conv=padded, bn=nn.BatchNorm2d(cout), act=nn.ReLU() if act else nn.Identity()))


class InvertedResidual(nn.Module):
    """expand (1x1, or kxk when fused) -> depthwise kxk (unless fused) -> project 1x1 (linear), + input."""

    def __init__(self, cin: int, b: Block, width: float, stride: int, dilation: int):
        super().__init__()
        cout, inner = make_divisible(b.channels * width), make_divisible(cin * b.expansion)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if b.fused:
            if inner != cin:  # an expansion of 1 has nothing to expand (the table's first block)
                layers["expand"] = ConvBNAct(cin, inner, b.kernel, stride, dilation)
        else:
            layers["expand"] = ConvBNAct(cin, inner)
            layers["depthwise"] = ConvBNAct(inner, inner, b.kernel, stride, dilation, groups=inner)
        layers["project"] = ConvBNAct(inner if layers else cin, cout, act=False)
        self.layers = nn.Sequential(layers)
        self.residual = b.residual and stride == 1 and cin == cout
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return x + y if self.residual else y


class ASPPLite(nn.Module):
    """DeepLab's ASPP-lite: image pooling (tiled back) and a 1x1 branch, concatenated in the file's order."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.aspp0 = ConvBNAct(cin, cout)
        self.image_pooling = ConvBNAct(cin, cout)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        # expand, not a resize: keeps the graph shape-dynamic in ONNX (as rtseg's own ASPP does)
        pooled = self.image_pooling(f.mean((2, 3), keepdim=True)).expand(-1, -1, f.shape[2], f.shape[3])
        return torch.cat([pooled, self.aspp0(f)], 1)


class EdgeTPUDeepLabNet(nn.Module):
    """MobileNet-EdgeTPU + ASPP-lite; returns logits at the input size (bilinear, corners aligned as the
    file's resize). Input normalised as (x - 128) / 128."""

    def __init__(self, num_classes: int = 11, width: float = 0.75, output_stride: int = 16):
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
        cin = make_divisible(STEM * width)
        self.stem = ConvBNAct(3, cin, 3, stride=2)
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        current, rate = 2, 1
        for i, b in enumerate(BLOCKS):
            stride = b.stride
            if current == output_stride and stride > 1:  # DeepLab: keep the resolution, dilate what follows
                stride, dilation, rate = 1, rate, rate * b.stride
            else:
                current, dilation = current * stride, rate
            block = InvertedResidual(cin, b, width, stride, dilation)
            blocks["expanded_conv" + (f"_{i}" if i else "")] = block
            cin = block.out_channels
        self.blocks = nn.Sequential(blocks)
        last = LAST if width <= 1 else make_divisible(LAST * width)
        self.conv_1 = ConvBNAct(cin, last)
        self.aspp = ASPPLite(last, HEAD)
        self.projection = ConvBNAct(2 * HEAD, HEAD)
        self.logits = nn.Conv2d(HEAD, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.conv_1(self.blocks(self.stem(x)))
        logits = self.logits(self.projection(self.aspp(f)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)


def load_port(net: EdgeTPUDeepLabNet, port: EdgeTPUDeepLab) -> int:
    """Copy the port's (tflite_edgetpu.EdgeTPUDeepLab, `clip=False`) weights into `net`: each folded
    convolution as conv + identity batch norm, the logits as they are. Returns the convolutions placed; a
    port of another shape (another width, another head) is one RtsegError, never half-loaded."""
    from .tflite_edgetpu import ConvAct

    ours = dict(net.named_modules())
    pairs = []
    for name, m in port.named_modules():
        if not isinstance(m, ConvAct):
            continue
        src = m.conv.conv if isinstance(m.conv, TFSamePad) else m.conv
        dst = ours.get(name)
        conv = None if dst is None else dst.conv.conv if isinstance(dst.conv, TFSamePad) else dst.conv
        if (
            dst is None
            or conv is None
            or conv.weight.shape != src.weight.shape
            or conv.stride != src.stride
            or conv.dilation != src.dilation
        ):
            got = "nothing" if conv is None else f"{tuple(conv.weight.shape)}"
            raise RtsegError(
                f"{m.scope}: the file has {tuple(src.weight.shape)} (stride {src.stride[0]}, dilation "
                f"{src.dilation[0]}), the model {got} (another width?)"
            )
        pairs.append((src, conv, dst.bn))
    if len(pairs) != sum(isinstance(m, ConvBNAct) for m in net.modules()):
        raise RtsegError(f"the file has {len(pairs)} convolutions, the model {sum(isinstance(m, ConvBNAct) for m in net.modules())}")
    if port.logits.weight.shape != net.logits.weight.shape:
        raise RtsegError(f"the file's head gives {port.logits.out_channels} classes, the model {net.logits.out_channels}")
    with torch.no_grad():
        for src, conv, bn in pairs:
            conv.weight.copy_(src.weight)
            set_identity_batchnorm(bn, conv_bias(src))
        net.logits.load_state_dict(port.logits.state_dict())
    return len(pairs)
