"""Google's TF-Slim MobileNetV2 TFLite files as PyTorch weights: the ImageNet classifier and DeepLabV3 (VOC).

The public files (Coral's test data, Apache-2.0) are 8-bit: weights are uint8/int8 with a scale and
zero-point, batch norm is folded into each convolution (weight * gamma / sigma, bias = beta - mean * gamma /
sigma). We read them with the shared TFLite reader (tflite_reader.py, no interpreter needed), dequantized, and
map every convolution onto torchvision's MobileNetV2 by its TF-Slim scope name:

    MobilenetV2/Conv                          -> features.0        (3x3 stride 2)
    MobilenetV2/expanded_conv/{depthwise,project}   -> features.1   (no expansion)
    MobilenetV2/expanded_conv_K/{expand,depthwise,project} -> features.K+1
    MobilenetV2/Conv_1                        -> features.18       (1x1 to 1280, classifier only)

Folded batch norm is unfolded so that the network computes exactly what the file does in eval mode and
about the same in train mode (see `unfold_batchnorm`). Two differences from torchvision's layout matter:
TF-Slim rounds channels of narrow networks differently (DeepLab's width 0.5 has 12 channels at stride 4,
torchvision 16), which `slim_mobilenet_v2` reproduces; and TF pads stride-2 convolutions 'SAME'
(nothing before, one after, on even sizes), which `TFSamePad` reproduces where exactness matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import RtsegError
from .tflite_reader import ConvLayer, TFLiteFile, read_tflite

if TYPE_CHECKING:
    from torchvision.models import MobileNetV2

# TF-Slim scopes of the convolutions we know how to place, in file order.
_SCOPE = re.compile(
    r"(MobilenetV2/(?:Conv_1|Conv|expanded_conv(?:_\d+)?/(?:expand|depthwise|project)|Logits/Conv2d_1c_1x1)"
    r"|aspp0|image_pooling|concat_projection|logits/semantic)/"
)
# The input of every file: uint8 RGB, real = (q - 128) / 128, i.e. (x / 255 - mean) / std with:
SLIM_MEAN = (128 / 255,) * 3
SLIM_STD = (128 / 255,) * 3


# One convolution of the file, dequantized, in PyTorch's layout (the shared reader's record).
SlimConv = ConvLayer


@dataclass
class SlimFile:
    """What rtseg needs from a TF-Slim MobileNetV2 TFLite file."""

    path: Path
    kind: str  # imagenet | deeplab
    width: float  # depth multiplier, from the first convolution's channels
    input_size: tuple[int, int]
    num_classes: int  # 1001 (ImageNet, 0 = background) or 21 (PASCAL VOC)
    convs: dict[str, SlimConv] = field(default_factory=dict)
    align_corners: bool = True  # DeepLab's bilinear resizes


def read_slim_tflite(path: str | Path | TFLiteFile) -> SlimFile:
    """Parse a TF-Slim MobileNetV2 TFLite file (ImageNet classifier or DeepLabV3); anything else is refused."""
    f = path if isinstance(path, TFLiteFile) else read_tflite(path)
    path = f.path
    convs: dict[str, SlimConv] = {}
    align = True
    for op in f.ops:
        if op.kind == "RESIZE_BILINEAR":
            align = op.options["align_corners"]
        if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        wname = f.name(op.inputs[1])
        m = _SCOPE.search(wname)
        if not m:
            raise RtsegError(f"{path.name}: convolution '{wname.split(';')[0]}' is not part of a TF-Slim MobileNetV2 or DeepLabV3 graph")
        convs[m.group(1)] = f.conv(op, m.group(1))
    if "MobilenetV2/Conv" not in convs or "MobilenetV2/expanded_conv_16/project" not in convs:
        raise RtsegError(
            f"{path.name} is not a TF-Slim MobileNetV2 (no MobilenetV2/Conv .. expanded_conv_16 "
            f"convolutions); rtseg reads Google's MobileNetV2 and DeepLabV3-MobileNetV2 files"
        )
    shape = f.shape(f.inputs[0])
    width = convs["MobilenetV2/Conv"].weight.shape[0] / 32
    if "logits/semantic" in convs:
        kind, classes = "deeplab", convs["logits/semantic"].weight.shape[0]
    elif "MobilenetV2/Logits/Conv2d_1c_1x1" in convs:
        kind, classes = "imagenet", convs["MobilenetV2/Logits/Conv2d_1c_1x1"].weight.shape[0]
    else:
        raise RtsegError(f"{path.name}: a MobileNetV2 with neither an ImageNet classifier nor a DeepLab head")
    return SlimFile(path, kind, width, (int(shape[1]), int(shape[2])), classes, convs, align)


def slim_mobilenet_v2(width: float) -> MobileNetV2:
    """torchvision's MobileNetV2 with TF-Slim's channel counts (DeepLab rounds narrow nets to 1, not 8)."""
    import torchvision

    return torchvision.models.mobilenet_v2(width_mult=width, round_nearest=8 if width == 1.0 else 1)


def torchvision_name(scope: str) -> tuple[str, str]:
    """TF-Slim scope -> (conv module, batch-norm module) under torchvision's MobileNetV2 `features`."""
    if scope == "MobilenetV2/Conv":
        return "0.0", "0.1"
    if scope == "MobilenetV2/Conv_1":
        return "18.0", "18.1"
    m = re.fullmatch(r"MobilenetV2/expanded_conv(?:_(\d+))?/(expand|depthwise|project)", scope)
    if not m:
        raise KeyError(scope)
    block, part = int(m.group(1) or 0) + 1, m.group(2)
    if block == 1:  # no expansion: depthwise is conv.0, project conv.1 + BN conv.2
        return {"depthwise": ("1.conv.0.0", "1.conv.0.1"), "project": ("1.conv.1", "1.conv.2")}[part]
    return {
        "expand": (f"{block}.conv.0.0", f"{block}.conv.0.1"),
        "depthwise": (f"{block}.conv.1.0", f"{block}.conv.1.1"),
        "project": (f"{block}.conv.2", f"{block}.conv.3"),
    }[part]


def load_backbone(features: nn.Module, slim: SlimFile) -> int:
    """Copy every backbone convolution of the file into torchvision's `features` (BN as identity + bias).

    `features` is torchvision's `features` Sequential, or any module whose submodules carry the same names
    (rtseg's encoder stages are slices of it, which keep the names). Returns how many convolutions were
    placed. Shapes must agree exactly: a file of another width is refused.
    """
    modules = _features_modules(features)
    placed = 0
    for scope, c in slim.convs.items():
        try:
            conv_name, bn_name = torchvision_name(scope)
        except KeyError:
            continue  # head convolutions: not part of the backbone
        if conv_name not in modules:
            continue  # Conv_1 when `features` stops before it
        conv, bn = cast(nn.Conv2d, modules[conv_name]), cast(nn.BatchNorm2d, modules[bn_name])
        if tuple(conv.weight.shape) != c.weight.shape:
            raise RtsegError(
                f"{slim.path.name}: {scope} has shape {c.weight.shape}, the model expects {tuple(conv.weight.shape)} (another width?)"
            )
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(c.weight))
            set_identity_batchnorm(bn, torch.from_numpy(c.bias))
        placed += 1
    if placed < 51:  # Conv, expanded_conv (2), expanded_conv_1..16 (3 each): the whole backbone or nothing
        raise RtsegError(f"{slim.path.name}: only {placed} backbone convolutions found a place in the model")
    return placed


def _features_modules(features: nn.Module) -> dict[str, nn.Module]:
    """Submodules by their name under torchvision's `features`: rtseg's encoder holds slices of it as
    `stage4`, `stage8`...; slices keep the original indices, so only that first name goes."""
    out = {}
    for k, m in features.named_modules():
        if k.startswith("stage") and "." in k:
            k = k.split(".", 1)[1]
        out[k] = m.conv if isinstance(m, TFSamePad) else m
    return out


def conv_bias(conv: nn.Conv2d) -> torch.Tensor:
    """The bias of a convolution made with one (torch types it Optional: None only for `bias=False`)."""
    return cast(torch.Tensor, conv.bias)


def _running_stats(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Running mean and variance (torch types them Optional: None only for `track_running_stats=False`,
    which no batch norm here is made with)."""
    return cast(torch.Tensor, bn.running_mean), cast(torch.Tensor, bn.running_var)


def set_identity_batchnorm(bn: nn.BatchNorm2d, bias: torch.Tensor) -> None:
    """BN that adds `bias` and nothing else in eval mode: the folded convolution's output, exactly."""
    running_mean, running_var = _running_stats(bn)
    with torch.no_grad():
        bn.weight.fill_(1.0)
        bn.bias.copy_(bias)
        running_mean.zero_()
        running_var.fill_(1.0 - bn.eps)


@torch.no_grad()
def unfold_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> int:
    """Give every identity batch norm the statistics of its convolution's output on real data.

    A folded file has no BN statistics. With identity BN the network is exact in eval mode, but in train
    mode BN normalises each batch to unit variance and the pretrained activations are lost at the first
    step. Measuring each convolution's output mean m and variance v and setting running stats (m, v),
    gamma = sqrt(v + eps), beta = m + bias keeps eval mode exact (the two cancel) and makes train mode
    start close to the pretrained network. Returns the number of batch norms unfolded.
    """
    pairs = [(conv, bn) for conv, bn in _conv_bn_pairs(model) if _is_identity(bn)]
    sums: dict[int, list] = {}
    hooks = []
    for i, (conv, _) in enumerate(pairs):

        def hook(_m, _inp, out, i=i):
            o = out.float()
            s = sums.setdefault(i, [0.0, 0.0, 0])
            s[0] = s[0] + o.sum((0, 2, 3))
            s[1] = s[1] + (o * o).sum((0, 2, 3))
            s[2] += o.numel() // o.shape[1]

        hooks.append(conv.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    for i, (_, bn) in enumerate(pairs):
        if i not in sums:
            continue
        s1, s2, n = sums[i]
        mean = s1 / n
        var = (s2 / n - mean * mean).clamp_min(1e-6)
        bias = bn.bias.clone()
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_((var + bn.eps).sqrt())
        bn.bias.copy_(mean + bias)
    return len(sums)


def _conv_bn_pairs(model: nn.Module):
    """(conv, bn) for every convolution directly followed by a batch norm in a Sequential."""
    for m in model.modules():
        if isinstance(m, nn.Sequential):
            children = list(m.children())
            for a, b in zip(children, children[1:]):
                if isinstance(a, (nn.Conv2d, TFSamePad)) and isinstance(b, nn.BatchNorm2d):
                    yield a, b


def _is_identity(bn: nn.BatchNorm2d) -> bool:
    running_mean, running_var = _running_stats(bn)
    return bool(
        torch.all(bn.weight == 1) and torch.all(running_mean == 0) and torch.allclose(running_var, torch.full_like(running_var, 1 - bn.eps))
    )


class TFSamePad(nn.Module):
    """A stride-2 convolution padded as TensorFlow's 'SAME' does: the odd pixel of padding goes after."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        self.k = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
        self.s = conv.stride[0]
        conv.padding = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[3], x.shape[2]):  # F.pad wants (left, right, top, bottom)
            # TF: total = (ceil(size / s) - 1) * s + k - size, written without max/ceil so ONNX tracing keeps it
            total = self.k - self.s + (self.s - size % self.s) % self.s
            pads += [total // 2, total - total // 2]
        return self.conv(F.pad(x, pads))


def use_tf_padding(features: nn.Module) -> None:
    """Wrap every strided convolution of `features` in `TFSamePad` (exact TF arithmetic, any input size)."""
    for name, m in list(features.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.Conv2d) and child.stride[0] > 1:
                setattr(m, child_name, TFSamePad(child))


def set_dilations(features: nn.Module, slim: SlimFile) -> None:
    """Strides and dilations as the file has them (DeepLab's output stride 16: expanded_conv_14.. dilated)."""
    modules = _features_modules(features)
    for scope, c in slim.convs.items():
        try:
            conv_name, _ = torchvision_name(scope)
        except KeyError:
            continue
        conv = cast("nn.Conv2d | None", modules.get(conv_name))
        if conv is None or conv.kernel_size == (1, 1):
            continue
        conv.stride = (c.stride, c.stride)
        conv.dilation = (c.dilation, c.dilation)
        conv.padding = (c.dilation, c.dilation)


def _conv_bn_act(c: SlimConv, act: nn.Module) -> nn.Sequential:
    conv = nn.Conv2d(c.weight.shape[1], c.weight.shape[0], c.weight.shape[2], bias=False)
    bn = nn.BatchNorm2d(c.weight.shape[0])
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(c.weight))
    set_identity_batchnorm(bn, torch.from_numpy(c.bias))
    return nn.Sequential(conv, bn, act)


class SlimImageNetClassifier(nn.Module):
    """The ImageNet file as a PyTorch network (1001 logits, 0 = background): proves the backbone mapping."""

    def __init__(self, slim: SlimFile, tf_padding: bool = True):
        super().__init__()
        net = slim_mobilenet_v2(slim.width)
        load_backbone(net.features, slim)
        if tf_padding:
            use_tf_padding(net.features)
        self.features = net.features
        c = slim.convs["MobilenetV2/Logits/Conv2d_1c_1x1"]
        self.logits = nn.Conv2d(c.weight.shape[1], c.weight.shape[0], 1)
        with torch.no_grad():
            self.logits.weight.copy_(torch.from_numpy(c.weight))
            conv_bias(self.logits).copy_(torch.from_numpy(c.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(F.adaptive_avg_pool2d(self.features(x), 1)).flatten(1)


class SlimDeepLabV3(nn.Module):
    """DeepLabV3 with its MobileNetV2 backbone, as in the file: ASPP-lite (1x1 branch + image pooling), a
    1x1 projection and class logits, bilinear back to the input size. Returns logits (N, classes, H, W)."""

    def __init__(self, slim: SlimFile, tf_padding: bool = True):
        super().__init__()
        if slim.kind != "deeplab":
            raise RtsegError(f"{slim.path.name} is a classifier, not a DeepLab segmentation model")
        net = slim_mobilenet_v2(slim.width)
        self.backbone = net.features[:18]  # DeepLab stops before Conv_1
        load_backbone(self.backbone, slim)
        set_dilations(self.backbone, slim)
        if tf_padding:
            use_tf_padding(self.backbone)
        self.aspp0 = _conv_bn_act(slim.convs["aspp0"], nn.ReLU())
        self.image_pooling = _conv_bn_act(slim.convs["image_pooling"], nn.ReLU())
        self.concat_projection = _conv_bn_act(slim.convs["concat_projection"], nn.ReLU())
        c = slim.convs["logits/semantic"]
        self.logits = nn.Conv2d(c.weight.shape[1], c.weight.shape[0], 1)
        with torch.no_grad():
            self.logits.weight.copy_(torch.from_numpy(c.weight))
            conv_bias(self.logits).copy_(torch.from_numpy(c.bias))
        self.align_corners = slim.align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone(x)
        pooled = self.image_pooling(f.mean((2, 3), keepdim=True)).expand(-1, -1, f.shape[2], f.shape[3])
        y = self.logits(self.concat_projection(torch.cat([pooled, self.aspp0(f)], 1)))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=self.align_corners)


def backbone_state(slim: SlimFile) -> dict[str, torch.Tensor]:
    """The file's backbone as a torchvision `features.*` state dict (identity BN), for an rtseg encoder."""
    net = slim_mobilenet_v2(slim.width)
    load_backbone(net.features, slim)
    return {f"features.{k}": v for k, v in net.features.state_dict().items()}
