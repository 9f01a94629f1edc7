"""Where a model starts: Google's TFLite MobileNetV2 (ImageNet or DeepLabV3 on VOC), Google's DeepLab
MobileNet-EdgeTPU (Cityscapes), torchvision's ImageNet weights (needs internet), or an rtseg .pt; what does
not fit is said in one line, never half-loaded."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ..core.errors import RtsegError
from ..data.transforms import to_tensor_layout
from ..models import ModelSpec, build_model


CITYSCAPES_PREFIX = "cityscapes-tflite:"
TFLITE_PREFIXES = ("imagenet-tflite:", "voc-tflite:", CITYSCAPES_PREFIX)


def encoder_layout(args: argparse.Namespace) -> str:
    """--encoder, or what --pretrained needs: Google's MobileNetV2 files only fit TF-Slim's layout, the
    Cityscapes file only MobileNet-EdgeTPU."""
    pretrained = args.pretrained or ""
    needs = "edgetpu" if pretrained.startswith(CITYSCAPES_PREFIX) else "slim" if pretrained.startswith(TFLITE_PREFIXES) else None
    if args.encoder is None:
        return needs or "tv"
    if needs and args.encoder != needs:
        raise RtsegError(
            f"--pretrained {pretrained}: {'MobileNet-EdgeTPU' if needs == 'edgetpu' else 'TF-Slim'} weights need --encoder {needs}"
        )
    return args.encoder


def head_for(args: argparse.Namespace, encoder: str) -> str:
    """--head, or the encoder's: MobileNet-EdgeTPU comes with DeepLab's ASPP-lite (the Cityscapes file's head,
    and the only one it takes), the MobileNetV2 encoders default to DeepLabV3+."""
    if encoder == "edgetpu":
        if args.head not in (None, "aspplite") or args.task != "seg" or args.output_stride != 16:
            raise RtsegError(
                "--encoder edgetpu: DeepLab's ASPP-lite segmentation model at output stride 16 only "
                "(--head aspplite, --task seg, --output-stride 16)"
            )
        return "aspplite"
    if args.head == "aspplite":
        raise RtsegError("--head aspplite: only with --encoder edgetpu (MobileNetV2 takes deeplabv3plus or lraspp)")
    return args.head or "deeplabv3plus"


def _encoder(model: torch.nn.Module) -> torch.nn.Module:
    """The MobileNetV2 encoder of a model built on one (every architecture but edgetpu)."""
    return cast(torch.nn.Module, model.encoder)


def load_pretrained(
    model: torch.nn.Module, spec: ModelSpec, pretrained: str | None, calibration: list[np.ndarray] | None = None
) -> torch.nn.Module:
    if pretrained is None:
        return model
    if pretrained == "imagenet":
        try:
            imagenet = build_model(spec, pretrained="imagenet")
        except Exception as e:  # no internet, hub down, proxy...
            raise RtsegError(
                f"could not download torchvision's ImageNet MobileNetV2 weights ({e.__class__.__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); pass --pretrained PATH to a local file"
            ) from e
        _encoder(model).load_state_dict(_encoder(imagenet).state_dict())
        return model
    if pretrained.startswith(CITYSCAPES_PREFIX):
        return load_cityscapes_tflite(model, spec, pretrained, calibration or [])
    if pretrained.startswith(TFLITE_PREFIXES):
        return load_tflite_backbone(model, spec, pretrained, calibration or [])
    if not Path(pretrained).is_file():
        raise RtsegError(
            f"--pretrained {pretrained}: no such file (use 'imagenet', voc-tflite:PATH, "
            f"imagenet-tflite:PATH, cityscapes-tflite:PATH or a local .pt state dict)"
        )
    try:
        state = torch.load(pretrained, map_location="cpu", weights_only=True)
        state = state.get("model", state)
    except Exception as e:
        raise RtsegError(f"--pretrained {pretrained}: not a readable PyTorch state dict ({e.__class__.__name__})") from e
    if not isinstance(state, dict):
        raise RtsegError(f"--pretrained {pretrained}: not a state dict (found {type(state).__name__})")
    return load_matching(model, state, pretrained)


def pretrained_file(pretrained: str | None) -> Path | None:
    """The local file a --pretrained value names (its checksum goes into the training record), if any."""
    if not pretrained or pretrained == "imagenet":
        return None
    return Path(pretrained.split(":", 1)[1] if pretrained.startswith(TFLITE_PREFIXES) else pretrained)


def load_tflite_backbone(model: torch.nn.Module, spec: ModelSpec, pretrained: str, calibration: list[np.ndarray]) -> torch.nn.Module:
    """Google's MobileNetV2 (ImageNet) or DeepLabV3 (VOC) backbone from a TFLite file into the encoder, with
    its folded batch norms unfolded on `calibration` images (models/tflite_mnv2.py says why)."""
    from ..models.tflite_mnv2 import load_backbone, read_slim_tflite

    kind, path = pretrained.split(":", 1)
    if not Path(path).is_file():
        raise RtsegError(f"--pretrained {pretrained}: no such file")
    slim = read_slim_tflite(path)
    expected = {"imagenet-tflite": "imagenet", "voc-tflite": "deeplab"}[kind]
    if slim.kind != expected:
        what = "an ImageNet classifier" if slim.kind == "imagenet" else "a DeepLab model"
        raise RtsegError(
            f"--pretrained {pretrained}: the file is {what}; use {'imagenet' if slim.kind == 'imagenet' else 'voc'}-tflite:{path}"
        )
    if slim.width != spec.width:
        raise RtsegError(f"--pretrained {pretrained}: a width-{slim.width:g} MobileNetV2, the model is width {spec.width:g}")
    placed = load_backbone(_encoder(model), slim)
    unfolded = unfold_on(model, spec, calibration)
    print(
        f"loaded {pretrained}: {placed} convolutions of the {slim.kind} backbone (width {slim.width:g}); "
        f"{unfolded} batch norms unfolded on {len(calibration)} training images"
    )
    return model


def load_cityscapes_tflite(model: torch.nn.Module, spec: ModelSpec, pretrained: str, calibration: list[np.ndarray]) -> torch.nn.Module:
    """Google's DeepLab MobileNet-EdgeTPU (Cityscapes) whole, backbone and head, into the edgetpu model. Its
    19 classes become CamVid's through the shipped cityscapes-to-camvid map (`merged_head`: each CamVid class
    starts as one Cityscapes class), so before any training the model is the zero-shot port; the port's
    activation clipping is left out (fine-tuning learns without those ceilings). Batch norms unfolded on
    `calibration` images as for the VOC start."""
    from ..data.camvid import CLASSES
    from ..data.classmap import load_class_map
    from ..models.edgetpu import EdgeTPUDeepLabNet, load_port
    from ..models.tflite_edgetpu import CITYSCAPES_TO_CAMVID_PREFER, EdgeTPUDeepLab, merged_head

    path = pretrained.split(":", 1)[1]
    if not Path(path).is_file():
        raise RtsegError(f"--pretrained {pretrained}: no such file")
    port = EdgeTPUDeepLab(path, clip=False)
    if spec.num_classes != len(port.classes):  # another label set: CamVid's, from the merged classes
        classes = CLASSES[: spec.num_classes]
        mapping = load_class_map("cityscapes-to-camvid").mapping
        port.replace_head(merged_head(port.logits, port.classes, mapping, classes, CITYSCAPES_TO_CAMVID_PREFER), classes)
    try:
        placed = load_port(cast(EdgeTPUDeepLabNet, model), port)  # the file fits --encoder edgetpu only
    except RtsegError as e:
        raise RtsegError(f"--pretrained {pretrained}: {e} (the Cityscapes file is width 0.75)") from e
    unfolded = unfold_on(model, spec, calibration)
    print(
        f"loaded {pretrained}: {placed} convolutions and the {len(port.classes)}-class head "
        f"(from Cityscapes' 19); {unfolded} batch norms unfolded on {len(calibration)} training images"
    )
    return model


def unfold_on(model: torch.nn.Module, spec: ModelSpec, calibration: list[np.ndarray]) -> int:
    """Give the file's folded batch norms real statistics from `calibration` images (batches of 8, in the
    model's input normalisation); how many were unfolded."""
    from ..models.tflite_mnv2 import unfold_batchnorm

    batches = [
        torch.from_numpy(np.stack([to_tensor_layout(im, spec.mean, spec.std) for im in calibration[i : i + 8]]))
        for i in range(0, len(calibration), 8)
    ]
    return unfold_batchnorm(model, batches) if batches else 0


def load_matching(model: torch.nn.Module, state: dict, source: str) -> torch.nn.Module:
    """Load what matches by name and shape (another size, head or task shares the encoder) and say what did
    not. The encoder must match almost whole: a file of another width shares a few tensors by chance."""
    own = model.state_dict()
    loadable = {k: v for k, v in state.items() if k in own and getattr(v, "shape", None) == own[k].shape}
    encoder = [k for k, v in own.items() if k.startswith("encoder.") and v.ndim]  # BN step counters always match
    matched = sum(k in loadable for k in encoder)
    if matched < 0.9 * len(encoder):
        raise RtsegError(f"--pretrained {source}: only {matched} of {len(encoder)} encoder weights match this model (another width?)")
    model.load_state_dict(loadable, strict=False)
    other_shape = sum(1 for k in state if k in own and k not in loadable)
    print(
        f"loaded {source}: {len(loadable)} of {len(own)} tensors ({len(own) - len(loadable) - other_shape} not in "
        f"the file, {other_shape} of another shape; {len(state) - len(loadable) - other_shape} unused)"
    )
    return model
