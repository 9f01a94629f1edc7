"""Google's DeepLab MobileNet-EdgeTPU (Cityscapes, 19 classes) TFLite file as a PyTorch network.

The file (Coral's test data, Apache-2.0) is 8-bit with batch norm folded into every convolution. Its backbone
is MobileNetV2's inverted residuals, except that the early blocks fuse the 1x1 expansion and the 3x3
depthwise into one full 3x3 convolution (cheaper on the Edge TPU than a depthwise), and the later blocks use
3x3 or 5x5 depthwise convolutions, dilated after stride 16 (output stride 16). Its head is DeepLab's
ASPP-lite: a 1x1 branch and an image-pooling branch, concatenated, projected, then 1x1 class logits.

Nothing of that is hard-coded here: the network is built from the file's operator list (shared reader,
tflite_reader.py), each convolution placed by its TF-Slim scope name, with the stride, dilation, padding and
activation its options say, residual connections where the file has an ADD, the branches concatenated in
the file's order. The weights are dequantized to float32 and the folded batch norms stay folded (a bias), so
the port computes what the file computes, in float; LiteRT's 8-bit arithmetic differs by rounding only.

Explicit named modules (`stem`, `blocks.expanded_conv_K`, `conv_1`, `aspp`, `projection`, `logits`) so the
network can be fine-tuned: `merged_head` builds a head for fewer classes from the 19 (e.g. CamVid's 11) and
`replace_head` swaps it in.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import RtsegError
from ..data.cityscapes import CLASSES as CITYSCAPES_CLASSES
from .tflite_mnv2 import SLIM_MEAN, SLIM_STD, TFSamePad, conv_bias
from .tflite_reader import ConvLayer, TFLiteFile, TFLiteOp, read_tflite

__all__ = ["EdgeTPUDeepLab", "is_edgetpu_deeplab", "merged_head", "CITYSCAPES_TO_CAMVID_PREFER", "SLIM_MEAN", "SLIM_STD"]

ROOT = "MobilenetEdgeTPU"
# Scope of a convolution from its weight tensor's name ("MobilenetEdgeTPU/expanded_conv_3/expand/Conv2D_Fold;...").
_SCOPE = re.compile(
    rf"^({ROOT}/(?:Conv_1|Conv|expanded_conv(?:_\d+)?/(?:expand|depthwise|project))"
    r"|aspp0|image_pooling|concat_projection|logits/semantic)/"
)
_ACTIVATIONS = {"none": nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6}
_HEAD = ("aspp0", "image_pooling", "concat_projection", "logits/semantic")


def is_edgetpu_deeplab(f: TFLiteFile) -> bool:
    """Whether a file's first convolution is MobileNet-EdgeTPU's stem (how the importer tells files apart)."""
    first = next((op for op in f.ops if op.kind == "CONV_2D"), None)
    return first is not None and f.name(first.inputs[1]).startswith(f"{ROOT}/Conv/")


class ConvAct(nn.Module):
    """A convolution of the file (bias = its folded batch norm) and its fused activation, padded as TF pads,
    its output clipped to the file's range where `clip` (see `EdgeTPUDeepLab`)."""

    def __init__(self, c: ConvLayer, clip: bool = True):
        super().__init__()
        out_ch, in_ch, k, _ = c.weight.shape
        groups = out_ch if c.depthwise else 1
        conv = nn.Conv2d(in_ch * groups, out_ch, k, stride=c.stride, dilation=c.dilation, groups=groups, bias=True)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(c.weight))
            conv_bias(conv).copy_(torch.from_numpy(c.bias))
        span = (k - 1) * c.dilation  # 'SAME' pads this much in total at stride 1
        padded: nn.Conv2d | TFSamePad = conv
        if c.padding == "VALID":
            conv.padding = (0, 0)
        elif c.stride > 1 or span % 2:  # TF puts the odd pixel after: torch's symmetric padding cannot
            padded = TFSamePad(conv)
        else:
            conv.padding = (span // 2, span // 2)
        self.conv = padded
        if c.activation not in _ACTIVATIONS:
            raise RtsegError(f"{c.scope}: fused activation {c.activation} is not supported")
        self.act = _ACTIVATIONS[c.activation]()
        self.clip = c.output_range if clip else None
        # where it sits in the file: its scope, and the tensors it reads and writes (LiteRT's indices too)
        self.scope, self.tensors = c.scope, (c.input, c.output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(x))
        return y.clamp(*self.clip) if self.clip else y


class InvertedResidual(nn.Module):
    """expand (1x1, or a full kxk in fused blocks) -> depthwise kxk (unfused blocks) -> project 1x1 (linear),
    plus the block's input where the file adds it."""

    def __init__(self, layers: OrderedDict[str, nn.Module], residual: bool, clip: tuple[float, float] | None = None):
        super().__init__()
        self.layers = nn.Sequential(layers)
        self.residual = residual
        self.clip = clip  # the sum's range in the file

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        if not self.residual:
            return y
        return (x + y).clamp(*self.clip) if self.clip else x + y


class ASPPLite(nn.Module):
    """DeepLab's ASPP-lite: a 1x1 branch and a global-pooling branch (tiled back), concatenated."""

    def __init__(self, aspp0: ConvAct, image_pooling: ConvAct, pooling_first: bool):
        super().__init__()
        self.aspp0 = aspp0
        self.image_pooling = image_pooling
        self.pooling_first = pooling_first

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        # the file averages a 33x33 window over its 33x33 map; at any other input size that means global
        pooled = self.image_pooling(f.mean((2, 3), keepdim=True)).expand(-1, -1, f.shape[2], f.shape[3])
        branches = [pooled, self.aspp0(f)] if self.pooling_first else [self.aspp0(f), pooled]
        return torch.cat(branches, 1)


class EdgeTPUDeepLab(nn.Module):
    """DeepLab MobileNet-EdgeTPU from its TFLite file. `forward` gives the class logits at output stride 16,
    (N, classes, ceil(H/16), ceil(W/16)) for an NCHW input normalised as (x - 128) / 128 (SLIM_MEAN/STD);
    `segment` gives them at the input size (the file's bilinear resize).

    `clip`: clip every convolution's and residual sum's output to the range its 8-bit tensor holds in the
    file. Quantization-aware training learned these ranges and clipped to them in its forward pass, so they
    belong to the trained network (a ReLU with a learned ceiling, like ReLU6). With them every convolution
    fed LiteRT's input is within half a quantization step of LiteRT's output; without them saturated pixels
    are up to 119 steps off (expanded_conv_1/expand), though end to end the class maps move by under 0.1
    point on the test frames. Turn it off to fine-tune without the ceilings.

    Against LiteRT end to end (tests/test_tflite_edgetpu.py): the 33x33 logits differ by 0.44-0.57 on average
    (2-3 of their quantization steps of 0.2015), and the class maps agree on 99.1% of the example image and
    93.5-97.6% of CamVid frames. That gap is 8-bit rounding compounding over 80 layers, not the port: no
    single layer is off by more than rounding, and LiteRT's own logits resized in float already disagree
    with its 8-bit resize on 0.3-0.7% of pixels.
    """

    def __init__(self, f: TFLiteFile | str | Path, clip: bool = True):
        super().__init__()
        f = f if isinstance(f, TFLiteFile) else read_tflite(f)
        layout = _read_layout(f)
        self.input_size: tuple[int, int] = layout.input_size
        self.align_corners = layout.align_corners
        self.classes: tuple[str, ...] = (
            CITYSCAPES_CLASSES if layout.num_classes == len(CITYSCAPES_CLASSES) else tuple(f"class {i}" for i in range(layout.num_classes))
        )
        convs = layout.convs
        self.stem = ConvAct(convs[f"{ROOT}/Conv"], clip)
        self.blocks = nn.Sequential(
            OrderedDict(
                (
                    block,
                    InvertedResidual(
                        OrderedDict(
                            (part, ConvAct(convs[f"{ROOT}/{block}/{part}"], clip))
                            for part in ("expand", "depthwise", "project")
                            if f"{ROOT}/{block}/{part}" in convs
                        ),
                        block in layout.residual,
                        layout.residual.get(block) if clip else None,
                    ),
                )
                for block in layout.blocks
            )
        )
        self.conv_1 = ConvAct(convs[f"{ROOT}/Conv_1"], clip)
        self.aspp = ASPPLite(ConvAct(convs["aspp0"], clip), ConvAct(convs["image_pooling"], clip), layout.pooling_first)
        self.projection = ConvAct(convs["concat_projection"], clip)
        c = convs["logits/semantic"]
        self.logits = nn.Conv2d(c.weight.shape[1], c.weight.shape[0], 1)
        with torch.no_grad():
            self.logits.weight.copy_(torch.from_numpy(c.weight))
            conv_bias(self.logits).copy_(torch.from_numpy(c.bias))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's output (1280 channels at stride 16)."""
        return self.conv_1(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.projection(self.aspp(self.features(x))))

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Logits resized to the input (bilinear, the file's align_corners), as the file's class map sees them."""
        return F.interpolate(self(x), size=x.shape[-2:], mode="bilinear", align_corners=self.align_corners)

    def replace_head(self, head: nn.Conv2d, classes: Sequence[str]) -> None:
        """Swap the 1x1 logits convolution (e.g. for `merged_head`'s) and name its classes."""
        if head.out_channels != len(classes) or head.in_channels != self.logits.in_channels:
            raise ValueError(
                f"head {head.in_channels}->{head.out_channels} for {len(classes)} classes; "
                f"the projection gives {self.logits.in_channels} channels"
            )
        self.logits = head
        self.classes = tuple(classes)


def merged_head(
    logits: nn.Conv2d,
    model_classes: Sequence[str],
    mapping: Mapping[str, str],
    classes: Sequence[str],
    prefer: Mapping[str, str] | None = None,
) -> nn.Conv2d:
    """A 1x1 logits convolution for `classes` (e.g. CamVid's 11) initialised from a head for `model_classes`.

    Each new class takes the weights and bias of one model class mapped onto it: `prefer[new class]` if
    given, else the first in the model's order (Cityscapes lists traffic light before traffic sign, so
    CITYSCAPES_TO_CAMVID_PREFER names the sign). One member rather than a merge (a log-sum-exp of the
    members is not linear) keeps the head a plain convolution; the other members' pixels are left to
    fine-tuning. A new class nothing maps onto starts with tiny weights and the lowest bias. `mapping` is
    checked as `rtseg eval --class-map` checks it.

        model.replace_head(merged_head(model.logits, model.classes, mapping, camvid.CLASSES), camvid.CLASSES)
    """
    from ..data.classmap import ClassMap, class_map_lut

    lut = class_map_lut(ClassMap("head", dict(mapping)), model_classes, classes)
    prefer = dict(prefer or {})
    head = nn.Conv2d(logits.in_channels, len(classes), 1)
    with torch.no_grad():
        for k, name in enumerate(classes):
            members = [i for i in range(len(model_classes)) if lut[i] == k]
            if name in prefer:
                if prefer[name] not in model_classes or lut[list(model_classes).index(prefer[name])] != k:
                    raise RtsegError(f"prefer {name}: {prefer[name]!r} is not a model class mapped onto {name}")
                members = [list(model_classes).index(prefer[name])]
            if not members:
                nn.init.normal_(head.weight[k], std=1e-3)
                conv_bias(head)[k] = conv_bias(logits).min() - 1
                continue
            head.weight[k] = logits.weight[members[0]]
            conv_bias(head)[k] = conv_bias(logits)[members[0]]
    return head


# For CamVid's SignSymbol the sign, not the light (Cityscapes lists the light first); the other CamVid
# classes take the first Cityscapes class mapped onto them (wall -> building, terrain -> vegetation...).
CITYSCAPES_TO_CAMVID_PREFER = {"SignSymbol": "traffic sign"}


class _Layout:
    """What `_read_layout` found in the file: convolutions by scope, block order, residuals, head wiring."""

    def __init__(self) -> None:
        self.convs: dict[str, ConvLayer] = {}
        self.blocks: list[str] = []
        self.residual: dict[str, tuple[float, float] | None] = {}  # block -> its sum's range
        self.pooling_first = True
        self.align_corners = True
        self.input_size = (0, 0)
        self.num_classes = 0


def _read_layout(f: TFLiteFile) -> _Layout:
    """Walk the operator list; anything that is not DeepLab MobileNet-EdgeTPU's layout is one RtsegError."""
    name = f.path.name
    if not is_edgetpu_deeplab(f):
        first = next((f.name(op.inputs[1]).split(";")[0] for op in f.ops if op.kind == "CONV_2D"), "none")
        raise RtsegError(f"{name} is not a DeepLab MobileNet-EdgeTPU file (its first convolution is '{first}', not {ROOT}/Conv)")
    lay = _Layout()
    producer: dict[int, TFLiteOp] = {}
    scope_of: dict[int, str] = {}  # output tensor -> conv scope
    for op in f.ops:
        for t in op.outputs:
            producer[t] = op
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            wname = f.name(op.inputs[1]).split(";")[0]
            m = _SCOPE.match(wname)
            if not m:
                raise RtsegError(f"{name}: convolution '{wname}' is not part of DeepLab MobileNet-EdgeTPU")
            if op.options.get("depth_multiplier", 1) != 1:
                raise RtsegError(f"{name}: {m.group(1)} has depth multiplier {op.options['depth_multiplier']}; this port takes 1")
            lay.convs[m.group(1)] = f.conv(op, m.group(1))
            scope_of[op.outputs[0]] = m.group(1)
            block = m.group(1).split("/")[1] if m.group(1).count("/") == 2 else None
            if block and block not in lay.blocks:
                lay.blocks.append(block)
        elif op.kind == "ADD":
            # a residual: the block's projection plus the block's input
            scopes = [scope_of.get(t, "") for t in op.inputs]
            block = next((s.split("/")[1] for s in scopes if s.endswith("/project")), None)
            if block is None:
                raise RtsegError(f"{name}: an ADD (operator {op.index}) that is not a block's residual")
            lay.residual[block] = f.value_range(op.outputs[0])
            scope_of[op.outputs[0]] = f"{ROOT}/{block}/add"
        elif op.kind == "AVERAGE_POOL_2D":
            h, w = f.shape(op.inputs[0])[1:3]
            if op.options["filter"] != (h, w):
                raise RtsegError(
                    f"{name}: image pooling over {op.options['filter']} of a {h}x{w} map is not global; this port pools globally"
                )
        elif op.kind == "RESIZE_BILINEAR":
            lay.align_corners = op.options["align_corners"]
        elif op.kind == "CONCATENATION":
            lay.pooling_first = _concat_order(f, op, producer, scope_of) == ["image_pooling", "aspp0"]
    missing = [s for s in (f"{ROOT}/Conv", f"{ROOT}/Conv_1", *_HEAD) if s not in lay.convs]
    if missing or not lay.blocks:
        raise RtsegError(f"{name}: no {', '.join(missing) or 'blocks'} convolution; not the DeepLab MobileNet-EdgeTPU layout rtseg ports")
    _check_chain(f, lay)
    shape = f.shape(f.inputs[0])
    lay.input_size = (shape[1], shape[2])
    lay.num_classes = lay.convs["logits/semantic"].weight.shape[0]
    return lay


def _concat_order(f: TFLiteFile, op: TFLiteOp, producer: dict[int, TFLiteOp], scope_of: dict[int, str]) -> list[str]:
    """The convolution behind each input of the head's concatenation (through TILE / QUANTIZE / resizes)."""
    order = []
    for t in op.inputs:
        while (
            t not in scope_of
            and t in producer
            and producer[t].kind in ("TILE", "QUANTIZE", "RESIZE_BILINEAR", "DEQUANTIZE", "BROADCAST_TO")
        ):
            t = producer[t].inputs[0]
        order.append(scope_of.get(t, "?"))
    if sorted(order) != ["aspp0", "image_pooling"]:
        raise RtsegError(f"{f.path.name}: the head concatenates {order}, not aspp0 and image_pooling")
    return order


def _check_chain(f: TFLiteFile, lay: _Layout) -> None:
    """Each block must read what the one before it wrote (the project output, or its ADD): a straight chain
    is what `EdgeTPUDeepLab` builds, so a file wired otherwise is refused rather than ported wrongly."""
    out = lay.convs[f"{ROOT}/Conv"].output
    for block in lay.blocks:
        parts = [p for p in ("expand", "depthwise", "project") if f"{ROOT}/{block}/{p}" in lay.convs]
        if "project" not in parts:
            raise RtsegError(f"{f.path.name}: block {block} has no projection")
        t = out
        for p in parts:
            c = lay.convs[f"{ROOT}/{block}/{p}"]
            if c.input != t:
                raise RtsegError(f"{f.path.name}: {block}/{p} does not read its predecessor's output")
            t = c.output
        if block in lay.residual:
            add = next(op for op in f.ops if op.kind == "ADD" and t in op.inputs)
            if out not in add.inputs:
                raise RtsegError(f"{f.path.name}: {block}'s residual does not add the block's input")
            t = add.outputs[0]
        out = t
    if lay.convs[f"{ROOT}/Conv_1"].input != out:
        raise RtsegError(f"{f.path.name}: Conv_1 does not read the last block's output")
