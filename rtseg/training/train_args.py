"""`rtseg train`'s options, kept apart from the training code so the CLI parser needs no PyTorch."""

from __future__ import annotations

import argparse


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="CamVid-layout folder (train/, trainannot/, val/, valannot/)")
    p.add_argument(
        "--task",
        choices=["seg", "det", "segdet"],
        default="seg",
        help="segmentation, boxes (Car/Pedestrian/Bicyclist), or both on one encoder",
    )
    p.add_argument(
        "--width", type=float, default=1.0, help="width (depth) multiplier of the encoder (the Cityscapes MobileNet-EdgeTPU file is 0.75)"
    )
    p.add_argument(
        "--head",
        choices=["deeplabv3plus", "lraspp", "aspplite"],
        default=None,
        help="decoder (default: deeplabv3plus; aspplite, DeepLab's ASPP-lite, with --encoder edgetpu)",
    )
    p.add_argument("--output-stride", type=int, choices=[16, 32], default=16)
    p.add_argument("--input-size", default="360x480", help="HxW the model runs at (eval and export)")
    p.add_argument("--crop", default=None, help="HxW training crop (default: the input size)")
    p.add_argument("--scale", type=float, nargs=2, default=(0.5, 2.0), help="random scale range")
    p.add_argument(
        "--crop-max-share",
        type=float,
        default=1.0,
        metavar="S",
        help="redraw a training crop (up to 10 times) where one class covers more than this share of its labelled "
        "pixels (MMSegmentation's cat_max_ratio, 0.75 in its configs); 1 keeps every crop",
    )
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.02)
    p.add_argument("--warmup-epochs", type=float, default=5)
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of weights (0 disables)")
    p.add_argument("--no-class-weights", action="store_true", help="plain cross-entropy")
    p.add_argument(
        "--loss",
        choices=["ce", "ohem", "lovasz"],
        default="ce",
        help="per-pixel loss: ce (class-weighted cross-entropy), ohem (only the hard pixels: true-class "
        "probability under --ohem-thresh, at least --ohem-min-kept of the labelled ones) or lovasz "
        "(ce + the Lovasz-softmax surrogate of 1 - IoU per class)",
    )
    p.add_argument("--ohem-thresh", type=float, default=0.7, help="OHEM: pixels whose true class has a lower probability")
    p.add_argument("--ohem-min-kept", type=float, default=0.1, help="OHEM: share of labelled pixels always kept")
    p.add_argument(
        "--distill",
        metavar="TEACHER.pt",
        action="append",
        default=None,
        help="learn also from a trained model's per-pixel class distribution (its best.pt), e.g. the "
        "most accurate model into a fast one; given more than once, from the teachers' ensemble "
        "(their class distributions averaged)",
    )
    p.add_argument("--distill-weight", type=float, default=0.5, help="with --distill: loss = (1 - w) * label loss + w * distillation loss")
    p.add_argument("--distill-temperature", type=float, default=2.0, help="with --distill: softening temperature")
    p.add_argument("--amp", choices=["auto", "off"], default="auto", help="bf16 on CPU, fp16 on CUDA")
    p.add_argument(
        "--clip-grad", type=float, default=0.0, help="clip the gradient's global norm to this (0: off); steadies a fine-tune in bf16"
    )
    p.add_argument("--workers", type=int, default=None, help="data loader workers (default: 0 on CPU)")
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument(
        "--pretrained",
        default=None,
        help="start from: voc-tflite:FILE (Google's DeepLabV3-MobileNetV2 .tflite), imagenet-tflite:FILE "
        "(Google's MobileNetV2 ImageNet .tflite), cityscapes-tflite:FILE (Google's DeepLab "
        "MobileNet-EdgeTPU Cityscapes .tflite, --encoder edgetpu; its head becomes CamVid's from "
        "the merged classes), a local .pt (rtseg weights), or 'imagenet' (torchvision's, needs "
        "internet)",
    )
    p.add_argument(
        "--encoder",
        choices=["tv", "slim", "edgetpu"],
        default=None,
        help="encoder layout: tv (torchvision's), slim (TF-Slim's, for the MobileNetV2 .tflite starts) "
        "or edgetpu (DeepLab MobileNet-EdgeTPU with its ASPP-lite head, for cityscapes-tflite); "
        "default: what --pretrained needs, else tv",
    )
    p.add_argument(
        "--val-split",
        default="val",
        help="what selects the best epoch: val (CamVid val; its drive is in train, so optimistic) or "
        "holdout:DRIVE (that drive's frames are taken out of training and select; e.g. holdout:0006R0)",
    )
    p.add_argument("--out", default=None, help="run folder (default runs/<model name>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (smoke tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads for training (default: every core; fewer leaves room for other work)"
    )
