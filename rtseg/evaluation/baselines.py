"""The loop a newcomer writes from a tutorial: OpenCV read, PyTorch eager forward, argmax, overlay, write.

The baseline rtseg's pipeline is compared against (`rtseg bench`, benchmarks/pipeline_speed.py). Same
model weights, same input size, same overlay; one frame at a time, nothing overlapped.

    python -m rtseg.evaluation.baselines --weights engines/NAME.pt --video VIDEO --output out.mp4 [--frames N]
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
import torch

from rtseg.core.errors import RtsegError
from rtseg.data.camvid import PALETTE_RGB
from rtseg.models import ModelSpec, build_model


def naive_loop(weights: str, video: str, output: str, max_frames: int | None = None) -> dict:
    ck = torch.load(weights, map_location="cpu")
    spec = ModelSpec.from_dict(ck["spec"])
    model = build_model(spec)
    model.load_state_dict(ck["model"])
    model.eval()
    h, w = spec.input_size
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    palette_bgr = PALETTE_RGB[:, ::-1]

    cap = cv2.VideoCapture(video)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30
    writer = None
    frames = 0
    t0 = time.perf_counter()
    while max_frames is None or frames < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(cv2.resize(frame, (w, h)), cv2.COLOR_BGR2RGB)
        x = (torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0 - mean) / std
        with torch.no_grad():
            logits = model(x.unsqueeze(0))
            logits = logits if torch.is_tensor(logits) else logits["logits"]
        mask = logits.argmax(1)[0].numpy().astype(np.uint8)
        mask = cv2.resize(mask, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)
        overlay = cv2.addWeighted(frame, 0.5, palette_bgr[mask], 0.5, 0)
        if writer is None:
            writer = cv2.VideoWriter(output, cv2.VideoWriter.fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
        writer.write(overlay)
        frames += 1
    if writer is None:  # made at the first frame
        raise RtsegError(f"no frame could be read from {video}")
    writer.release()
    seconds = time.perf_counter() - t0
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds, "torch_threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--weights", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--frames", type=int, default=None)
    args = p.parse_args()
    print(json.dumps(naive_loop(args.weights, args.video, args.output, args.frames)))


if __name__ == "__main__":
    main()
