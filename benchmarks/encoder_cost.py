"""Issue-14 input: what writing the overlay video costs a frame, per writer, and what it gives for it.

    python benchmarks/encoder_cost.py [--video vtest.avi] [--frames 250] [--repeats 3] [--out FILE]

The overlays are real: the default model's class map blended over the video's frames (rtseg's own
postprocessing), made once before timing. Each writer is rtseg's own sink (OpenCV's mp4v `VideoSink`; the
PyAV `H264VideoSink` at each x264 preset, crf 23, one thread), fed the same frames; repeats interleave the
writers so machine noise hits all alike. Figures: CPU ms a frame (process time of `write` + `close`, all
threads; median over repeats and the range), the file's bit rate at the video's frame rate, and PSNR of the
decoded file against the overlays it was given (all frames, BGR).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks")]
from common import environment, header_markdown, write_report  # noqa: E402


def overlays(video: Path, n: int, model: str | None) -> tuple[list[np.ndarray], float]:
    from rtseg.core.modelinfo import resolve_model
    from rtseg.runtime.slot import load_slot

    slot = load_slot(resolve_model(model))
    cap, out = cv2.VideoCapture(str(video)), []
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    while len(out) < n and (got := cap.read())[0]:
        out.append(slot.postprocess(got[1], slot.infer(slot.preprocess(got[1])), draw=True).overlay)
    cap.release()
    return out, fps


def psnr(path: Path, reference: list[np.ndarray]) -> float:
    cap, errors = cv2.VideoCapture(str(path)), []
    for ref in reference:
        ok, img = cap.read()
        if not ok:
            break
        img = img[: ref.shape[0], : ref.shape[1]]  # H.264 trims odd sizes to even
        errors.append(float(np.mean((img.astype(np.float32) - ref[: img.shape[0], : img.shape[1]]) ** 2)))
    cap.release()
    return 10 * np.log10(255.0**2 / max(statistics.mean(errors), 1e-9))


def write(make_sink, frames: list[np.ndarray]) -> float:
    sink = make_sink()
    t0 = time.process_time()
    for f in frames:
        sink.write(SimpleNamespace(overlay=f))
    sink.close()
    return (time.process_time() - t0) / len(frames) * 1e3


def main() -> None:
    from rtseg.core.constants import H264_PRESETS
    from rtseg.runtime.sinks import H264VideoSink, VideoSink, pyav_available

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(ROOT.parent / "shared/data/video/vtest.avi"))
    p.add_argument("--frames", type=int, default=250)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default=None, help="the model whose overlay is written (default: the default model)")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/encoder_cost_cpu"))
    args = p.parse_args()

    frames, fps = overlays(Path(args.video), args.frames, args.model)
    size = (frames[0].shape[1], frames[0].shape[0])
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        writers = {"OpenCV mp4v (runtime install)": lambda: VideoSink(d / "mp4v.mp4", fps, size)}
        if pyav_available():
            for preset in H264_PRESETS[:3]:
                writers[f"H.264 x264 {preset}"] = lambda preset=preset: H264VideoSink(d / f"{preset}.mp4", fps, size, preset)
        ms: dict[str, list[float]] = {name: [] for name in writers}
        for _ in range(args.repeats):
            for name, make in writers.items():
                ms[name].append(write(make, frames))
        files = {name: next(d.glob(("mp4v" if "mp4v" in name else name.rsplit(" ", 1)[1]) + ".mp4")) for name in writers}
        rows = []
        for name in writers:
            mbit = files[name].stat().st_size * 8 / (len(frames) / fps) / 1e6
            rows.append(
                {
                    "writer": name,
                    "cpu_ms_per_frame": statistics.median(ms[name]),
                    "cpu_ms_range": [min(ms[name]), max(ms[name])],
                    "mbit_per_s": mbit,
                    "psnr_db": psnr(files[name], frames),
                }
            )

    env = environment()
    lines = [
        "# Writing the overlay video: CPU a frame, bit rate, quality",
        "",
        header_markdown(env),
        f"- video: `{args.video}`, the first {len(frames)} frames ({size[0]}x{size[1]}, {fps:g} FPS), overlays of "
        f"the {'default' if not args.model else args.model} model made before timing; {args.repeats} "
        "interleaved repeats",
        "",
        "| writer | CPU ms a frame (median) | range | Mbit/s | PSNR dB |",
        "|---|---:|---|---:|---:|",
    ]
    for r in rows:
        lo, hi = r["cpu_ms_range"]
        lines.append(f"| {r['writer']} | {r['cpu_ms_per_frame']:.2f} | {lo:.2f}-{hi:.2f} | {r['mbit_per_s']:.2f} | {r['psnr_db']:.2f} |")
    write_report(args.out, lines, {"environment": env, "video": args.video, "frames": len(frames), "rows": rows})


if __name__ == "__main__":
    main()
