"""Options more than one command takes: the backend and its precision, key frames and smoothing."""

from __future__ import annotations

import argparse

from .types import keyframe_interval


def add_temporal_args(p: argparse.ArgumentParser, keyframe_default: str | None, keyframe_help: str, smooth_help: str) -> None:
    """--keyframe and --smooth, as `rtseg run` and `rtseg eval` take them."""
    p.add_argument("--keyframe", metavar="N|auto", type=keyframe_interval, default=keyframe_default, help=keyframe_help)
    p.add_argument("--smooth", action="store_true", help=smooth_help)


def add_backend_args(p: argparse.ArgumentParser) -> None:
    from ..backends import available_backends

    p.add_argument(
        "--backend",
        default="auto",
        choices=available_backends(),
        help="auto (default): TensorRT on an NVIDIA GPU when installed, else ONNX Runtime CUDA, else the CPU; "
        "null: no inference at all (a fixed class map), to measure the pipeline alone",
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "fp16", "int8"],
        default="fp16",
        help="TensorRT engine precision (default fp16; int8 builds from the model's TensorRT INT8 sibling: "
        "rtseg export --model NAME --precision int8 --qdq tensorrt)",
    )
