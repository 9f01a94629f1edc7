"""Model zoo: a small spec names each architecture, `build_model` turns a spec into a torch module."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from torch import nn

from ..core.constants import IMAGENET_MEAN, IMAGENET_STD
from ..core.tasks import TASKS, has_det, has_seg
from .detection import DetectionNet
from .multitask import SegDetNet
from .segmentation import SegmentationNet
from .tflite_mnv2 import SLIM_MEAN, SLIM_STD

_HEAD_SHORT = {"deeplabv3plus": "dlv3p", "lraspp": "lraspp", "aspplite": "dlv3"}
# encoders whose input is (x - 128) / 128: Google's files were trained so
TF_INPUT_ENCODERS = ("slim", "edgetpu")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild an architecture; its `name` is the zoo's model name."""

    width: float = 1.0
    head: str = "deeplabv3plus"
    output_stride: int = 16
    input_size: tuple[int, int] = (360, 480)  # (height, width) the model is run at
    num_classes: int = 11
    task: str = "seg"  # seg | det | segdet (both heads on one encoder)
    num_det_classes: int = 3  # Car, Pedestrian, Bicyclist (data/boxes.py)
    # tv: torchvision's MobileNetV2 with ImageNet normalisation (rtseg's from-scratch models);
    # slim: TF-Slim's layout and (x - 128) / 128 input, so Google's pretrained TFLite weights load exactly;
    # edgetpu: DeepLab MobileNet-EdgeTPU (models/edgetpu.py), head "aspplite", (x - 128) / 128 input
    encoder: str = "tv"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        h, w = self.input_size
        short = _HEAD_SHORT.get(self.head, self.head)  # a newly registered head is named by its own name
        heads = {"seg": short, "det": "centernet", "segdet": short + "+centernet"}[self.task]
        family = "edgetpu" if self.encoder == "edgetpu" else "mnv2"
        return f"{family}-{round(self.width * 100):03d}-{heads}-os{self.output_stride}-{h}x{w}"

    @property
    def has_seg(self) -> bool:
        return has_seg(self.task)

    @property
    def has_det(self) -> bool:
        return has_det(self.task)

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel RGB mean of the input normalisation, in 0..1 (x = (pixel / 255 - mean) / std)."""
        return SLIM_MEAN if self.encoder in TF_INPUT_ENCODERS else tuple(IMAGENET_MEAN.tolist())

    @property
    def std(self) -> tuple[float, float, float]:
        return SLIM_STD if self.encoder in TF_INPUT_ENCODERS else tuple(IMAGENET_STD.tolist())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        d = dict(d)
        d["input_size"] = tuple(d["input_size"])
        return cls(**d)


def _edgetpu(spec: ModelSpec, pretrained: str | None) -> nn.Module:
    if spec.task != "seg" or spec.head != "aspplite":
        raise ValueError("the edgetpu encoder builds DeepLab's ASPP-lite segmentation model only (task seg, head aspplite)")
    from .edgetpu import EdgeTPUDeepLabNet

    return EdgeTPUDeepLabNet(spec.num_classes, spec.width, spec.output_stride)


def _by_task(spec: ModelSpec, pretrained: str | None) -> nn.Module:
    if spec.task == "seg":
        return SegmentationNet(spec.num_classes, spec.width, spec.head, spec.output_stride, pretrained=pretrained, layout=spec.encoder)
    if spec.task == "det":
        return DetectionNet(spec.num_det_classes, spec.width, spec.output_stride, pretrained=pretrained, layout=spec.encoder)
    if spec.task == "segdet":
        return SegDetNet(spec.num_classes, spec.num_det_classes, spec.width, spec.head, spec.output_stride, pretrained, layout=spec.encoder)
    raise ValueError(f"unknown task {spec.task!r} (one of {', '.join(TASKS)})")


# encoder -> how its networks are built: MobileNetV2 layouts (encoder.LAYOUTS) take any task and registered head
# (segmentation.SEG_HEADS); a network that is whole in itself (DeepLab MobileNet-EdgeTPU) builds itself. A new
# encoder is one module and one line here.
NETWORKS = {"tv": _by_task, "slim": _by_task, "edgetpu": _edgetpu}


def build_model(spec: ModelSpec, pretrained: str | None = None) -> nn.Module:
    """The network `spec` describes, untrained (or with torchvision's ImageNet weights: `pretrained="imagenet"`).

    >>> spec = ModelSpec(width=0.35, head="lraspp", output_stride=32, input_size=(64, 96))
    >>> type(build_model(spec)).__name__, spec.name
    ('SegmentationNet', 'mnv2-035-lraspp-os32-64x96')
    """
    if spec.encoder not in NETWORKS:
        raise ValueError(f"unknown encoder {spec.encoder!r} (one of {', '.join(NETWORKS)})")
    return NETWORKS[spec.encoder](spec, pretrained)


def parse_size(text: str) -> tuple[int, int]:
    """'360x480' -> (360, 480) as (height, width)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"size must look like HEIGHTxWIDTH (e.g. 360x480), got {text!r}")
    h, w = int(m.group(1)), int(m.group(2))
    if h < 32 or w < 32 or h % 8 or w % 8:
        # the decoders fuse stride-4/8 features; multiples of 8 keep those grids aligned with the input
        raise ValueError(f"size {h}x{w}: height and width must be multiples of 8 and at least 32")
    if h > MAX_SIDE or w > MAX_SIDE:
        # one input tensor of 4096x4096 is already 200 MB of float32, times the preprocessing pool
        raise ValueError(f"size {h}x{w}: height and width must be at most {MAX_SIDE}")
    return h, w


MAX_SIDE = 4096  # the largest input side rtseg accepts (a 4K frame's width)
