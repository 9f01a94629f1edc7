"""Where a model starts: Google's TFLite MobileNetV2 (ImageNet or DeepLabV3 on VOC), torchvision's ImageNet
weights (needs internet), or an rtseg .pt; what does not fit is said in one line, never half-loaded."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..core.errors import RtsegError
from ..data.transforms import to_tensor_layout
from ..models import ModelSpec, build_model


TFLITE_PREFIXES = ("imagenet-tflite:", "voc-tflite:")


def encoder_layout(args: argparse.Namespace) -> str:
    """--encoder, or what --pretrained needs: Google's TFLite weights only fit TF-Slim's layout."""
    pretrained = args.pretrained or ""
    tflite = pretrained.startswith(TFLITE_PREFIXES)
    if args.encoder is None:
        return "slim" if tflite else "tv"
    if tflite and args.encoder != "slim":
        raise RtsegError(f"--pretrained {pretrained}: TF-Slim weights need --encoder slim")
    return args.encoder


def load_pretrained(model: torch.nn.Module, spec: ModelSpec, pretrained: str | None,
                     calibration: list[np.ndarray] | None = None) -> torch.nn.Module:
    if pretrained is None:
        return model
    if pretrained == "imagenet":
        try:
            imagenet = build_model(spec, pretrained="imagenet")
        except Exception as e:  # no internet, hub down, proxy...
            raise RtsegError(f"could not download torchvision's ImageNet MobileNetV2 weights ({e.__class__.__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}); pass --pretrained PATH to a local file") from e
        model.encoder.load_state_dict(imagenet.encoder.state_dict())
        return model
    if pretrained.startswith(TFLITE_PREFIXES):
        return load_tflite_backbone(model, spec, pretrained, calibration or [])
    if not Path(pretrained).is_file():
        raise RtsegError(f"--pretrained {pretrained}: no such file (use 'imagenet', voc-tflite:PATH, "
                         f"imagenet-tflite:PATH or a local .pt state dict)")
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


def load_tflite_backbone(model: torch.nn.Module, spec: ModelSpec, pretrained: str,
                         calibration: list[np.ndarray]) -> torch.nn.Module:
    """Google's MobileNetV2 (ImageNet) or DeepLabV3 (VOC) backbone from a TFLite file into the encoder, with
    its folded batch norms unfolded on `calibration` images (models/tflite_mnv2.py says why)."""
    from ..models.tflite_mnv2 import load_backbone, read_slim_tflite, unfold_batchnorm

    kind, path = pretrained.split(":", 1)
    if not Path(path).is_file():
        raise RtsegError(f"--pretrained {pretrained}: no such file")
    slim = read_slim_tflite(path)
    expected = {"imagenet-tflite": "imagenet", "voc-tflite": "deeplab"}[kind]
    if slim.kind != expected:
        raise RtsegError(f"--pretrained {pretrained}: the file is a{'n ImageNet classifier' if slim.kind == 'imagenet' else ' DeepLab model'}; "
                         f"use {'imagenet' if slim.kind == 'imagenet' else 'voc'}-tflite:{path}")
    if slim.width != spec.width:
        raise RtsegError(f"--pretrained {pretrained}: a width-{slim.width:g} MobileNetV2, the model is width {spec.width:g}")
    placed = load_backbone(model.encoder, slim)
    batches = [torch.from_numpy(np.stack([to_tensor_layout(im, spec.mean, spec.std) for im in calibration[i:i + 8]]))
               for i in range(0, len(calibration), 8)]
    unfolded = unfold_batchnorm(model, batches) if batches else 0
    print(f"loaded {pretrained}: {placed} convolutions of the {slim.kind} backbone (width {slim.width:g}); "
          f"{unfolded} batch norms unfolded on {len(calibration)} training images")
    return model


def load_matching(model: torch.nn.Module, state: dict, source: str) -> torch.nn.Module:
    """Load what matches by name and shape (another size, head or task shares the encoder) and say what did
    not. The encoder must match almost whole: a file of another width shares a few tensors by chance."""
    own = model.state_dict()
    loadable = {k: v for k, v in state.items() if k in own and getattr(v, "shape", None) == own[k].shape}
    encoder = [k for k, v in own.items() if k.startswith("encoder.") and v.ndim]  # BN step counters always match
    matched = sum(k in loadable for k in encoder)
    if matched < 0.9 * len(encoder):
        raise RtsegError(f"--pretrained {source}: only {matched} of {len(encoder)} encoder weights match this model "
                         f"(another width?)")
    model.load_state_dict(loadable, strict=False)
    other_shape = sum(1 for k in state if k in own and k not in loadable)
    print(f"loaded {source}: {len(loadable)} of {len(own)} tensors ({len(own) - len(loadable) - other_shape} not in "
          f"the file, {other_shape} of another shape; {len(state) - len(loadable) - other_shape} unused)")
    return model
