"""Issue-14 input: frames kept in YUV 4:2:0 (runtime/yuv.py) against the BGR path: CPU a frame, and what it does
to the class maps and to accuracy.

    python benchmarks/yuv_path.py [--models A,B] [--video vtest.avi] [--frames 300] [--repeats 3]
                                  [--data ../shared/data/camvid] [--split holdout:0006R0] [--out FILE]

CPU: each piece around the model, rtseg's own calls, in CPU time (all threads of the process) with OpenCV on
one thread, as a pipeline stage runs them; both paths interleaved in each repeat. BGR path: OpenCV's FFmpeg
reader (BGR out), `Preprocessor.__call__`, the class map to frame size plus `Postprocessor.overlay`, the H.264
sink (which converts to I420 first) or OpenCV's mp4v writer. I420 path: PyAV's decoder (I420 out,
`yuv.I420Reader`), `Preprocessor.from_i420`, the class map to frame size plus `Postprocessor.blend_i420`, the
same H.264 sink or PyAV's mp4v writer (`Mpeg4VideoSink`), given the I420 overlay. A run writes one video, so
the sum counts one writer: the H.264 one for the I420 path's gain with `--codec h264`, mp4v for `--codec mp4v`.

Class maps: the share of pixels on which the two paths agree, over the video's frames (no labels there), and
beside it how much converting the same decoded frames to BGR by OpenCV rather than FFmpeg moves them alone.
Accuracy: mIoU on a labelled split (held-out drive by default) of each image (a) as `rtseg eval` reads it
(BGR from PNG), (b) through 4:2:0 and back to BGR, what the BGR path sees of a video of these frames, and
(c) through 4:2:0 on the I420 path.
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
from common import cpu_ms, environment, header_markdown, write_report  # noqa: E402


def decode_ms(video: str, n: int, i420: bool) -> float:
    from rtseg.runtime.yuv import I420Reader

    cap = cv2.VideoCapture(video, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    ok, first = cap.read()  # the reader's start-up is not a frame's cost
    reader = I420Reader.open(Path(video), first) if i420 else None
    if i420:
        cap.release()
        if reader is None:
            raise SystemExit(f"{video}: PyAV cannot give its frames as I420 (see yuv.I420Reader.open)")
        reader.read()
    read, t0 = 0, time.process_time()
    while read < n and ((reader.read() is not None) if i420 else cap.read()[0]):
        read += 1
    ms = (time.process_time() - t0) / read * 1e3
    reader.close() if i420 else cap.release()
    return ms


def encode_ms(frames: list[np.ndarray], fps: float, size: tuple[int, int], i420: bool, codec: str) -> float:
    from rtseg.runtime.sinks import H264VideoSink, Mpeg4VideoSink, VideoSink

    with tempfile.TemporaryDirectory() as d:
        if codec == "h264":
            sink = H264VideoSink(Path(d) / "o.mp4", fps, size)
        else:  # what each path writes mp4v with: OpenCV's writer (BGR), PyAV's (I420)
            sink = (Mpeg4VideoSink if i420 else VideoSink)(Path(d) / "o.mp4", fps, size)
        t0 = time.process_time()
        for f in frames:
            sink.write(SimpleNamespace(overlay=None, overlay_i420=f) if i420 else SimpleNamespace(overlay=f))
        sink.close()
        return (time.process_time() - t0) / len(frames) * 1e3


def speed(slot, video: str, n: int, repeats: int) -> dict:
    from rtseg.runtime import yuv

    cap, bgr = cv2.VideoCapture(video), []
    while len(bgr) < n and (got := cap.read())[0]:
        bgr.append(got[1])
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    reader = yuv.I420Reader.open(Path(video), bgr[0])
    i420 = [reader.read() for _ in bgr]
    reader.close()
    size = (bgr[0].shape[1], bgr[0].shape[0])
    post, buf = slot.post, slot.pre.pool.acquire()
    masks = [slot.infer(slot.pre(f))["mask"][0] for f in bgr]
    full = [post.resize_mask(m, size) for m in masks]
    overlays_bgr = [post.overlay(f, m) for f, m in zip(bgr, full)]
    overlays_i420 = [post.blend_i420(y, s) for y, s in zip(i420, masks)]
    pieces = {
        "decode": (lambda: decode_ms(video, n, False), lambda: decode_ms(video, n, True)),
        "preprocess": (lambda: cpu_ms(lambda f: slot.pre(f, out=buf), bgr), lambda: cpu_ms(lambda y: slot.pre.from_i420(y, out=buf), i420)),
        "class map to frame size + overlay": (
            lambda: cpu_ms(lambda fm: post.overlay(fm[0], post.resize_mask(fm[1], size), small=fm[1]), list(zip(bgr, masks))),
            lambda: cpu_ms(lambda ym: (post.resize_mask(ym[1], size), post.blend_i420(ym[0], ym[1])), list(zip(i420, masks))),
        ),
        "H.264 sink (x264 ultrafast)": (
            lambda: encode_ms(overlays_bgr, fps, size, False, "h264"),
            lambda: encode_ms(overlays_i420, fps, size, True, "h264"),
        ),
        "mp4v sink (OpenCV's writer / PyAV's)": (
            lambda: encode_ms(overlays_bgr, fps, size, False, "mp4v"),
            lambda: encode_ms(overlays_i420, fps, size, True, "mp4v"),
        ),
    }
    runs = {k: ([], []) for k in pieces}
    for _ in range(repeats):
        for k, (a, b) in pieces.items():
            runs[k][0].append(a())
            runs[k][1].append(b())
    agree, convert_only = [], []
    for f, y in zip(bgr, i420):
        ref = slot.process(f).mask
        agree.append(float(np.mean(ref == slot.postprocess_i420(y, slot.infer(slot.pre.from_i420(y))).mask)))
        # the same decoded picture converted to BGR by OpenCV instead of FFmpeg: how much that alone moves
        convert_only.append(float(np.mean(ref == slot.process(yuv.to_bgr(y)).mask)))
    return {
        "pieces": {k: {"bgr": v[0], "i420": v[1]} for k, v in runs.items()},
        "frames": len(bgr),
        "size": size,
        "class_map_agreement": {"mean": statistics.mean(agree), "min": min(agree)},
        "class_map_agreement_conversion_only": {"mean": statistics.mean(convert_only), "min": min(convert_only)},
    }


def accuracy(slot, data: str, split: str) -> dict:
    from rtseg.data.camvid import eval_pairs, read_label
    from rtseg.evaluation.metrics import ConfusionMatrix
    from rtseg.runtime import yuv

    cms = {k: ConfusionMatrix(len(slot.info.classes)) for k in ("bgr", "bgr_via_420", "i420")}
    pairs = eval_pairs(data, split)
    for img_path, lab_path in pairs:
        img, label = cv2.imread(str(img_path), cv2.IMREAD_COLOR), read_label(lab_path)
        i420 = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420)
        preds = {
            "bgr": slot.process(img).mask,
            "bgr_via_420": slot.process(yuv.to_bgr(i420)).mask,
            "i420": slot.postprocess_i420(i420, slot.infer(slot.pre.from_i420(i420))).mask,
        }
        for k, pred in preds.items():
            cms[k].update(label, pred)
    return {"split": split, "images": len(pairs), "miou": {k: cm.miou() for k, cm in cms.items()}}


def main() -> None:
    from rtseg.core.modelinfo import resolve_model
    from rtseg.runtime.allocator import keep_frame_buffers
    from rtseg.runtime.slot import load_slot

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mnv2-100-dlv3p-os16-288x384-voc-int8,mnv2-050-lraspp-os32-240x320-voc-kd")
    p.add_argument("--video", default=str(ROOT.parent / "shared/data/video/vtest.avi"))
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/camvid"))
    p.add_argument("--split", default="holdout:0006R0")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/yuv_path_cpu"))
    args = p.parse_args()

    keep_frame_buffers()  # as a pipeline runs
    cv2.setNumThreads(1)
    rows = []
    for name in args.models.split(","):
        slot = load_slot(resolve_model(name), "onnxruntime", threads=1)
        rows.append(
            {"model": slot.name, **speed(slot, args.video, args.frames, args.repeats), "accuracy": accuracy(slot, args.data, args.split)}
        )
        slot.close()

    env = environment()
    lines = [
        "# Frames in YUV 4:2:0 against BGR: CPU a frame, class maps, accuracy",
        "",
        header_markdown(env),
        f"- video: `{args.video}`, {rows[0]['frames']} frames at {rows[0]['size'][0]}x{rows[0]['size'][1]}; "
        f"OpenCV on one thread; CPU time of the process; {args.repeats} interleaved repeats, median (min-max)",
        f"- accuracy: `{args.data}` split `{args.split}` ({rows[0]['accuracy']['images']} images; a drive none of the models trained on)",
        "",
    ]
    for r in rows:
        lines += [f"## {r['model']}", "", "| piece | BGR path ms | I420 path ms | saved ms |", "|---|---:|---:|---:|"]
        med = {piece: (statistics.median(v["bgr"]), statistics.median(v["i420"])) for piece, v in r["pieces"].items()}
        for piece, v in r["pieces"].items():
            a, b = med[piece]
            lines.append(
                f"| {piece} | {a:.3f} ({min(v['bgr']):.3f}-{max(v['bgr']):.3f}) | {b:.3f} "
                f"({min(v['i420']):.3f}-{max(v['i420']):.3f}) | {a - b:.3f} |"
            )
        for writer in ("H.264", "mp4v"):
            total = [sum(m[i] for piece, m in med.items() if "sink" not in piece or piece.startswith(writer)) for i in (0, 1)]
            lines.append(f"| **sum, {writer}** | **{total[0]:.3f}** | **{total[1]:.3f}** | **{total[0] - total[1]:.3f}** |")
        acc, agree = r["accuracy"]["miou"], r["class_map_agreement"]
        conv = r["class_map_agreement_conversion_only"]
        lines += [
            "",
            f"- class maps of the two paths on the video: {100 * agree['mean']:.2f}% of pixels agree "
            f"(worst frame {100 * agree['min']:.2f}%); the BGR path on the same decoded frames converted "
            f"to BGR by OpenCV instead of FFmpeg, nothing else changed: {100 * conv['mean']:.2f}% "
            f"(worst {100 * conv['min']:.2f}%)",
            f"- mIoU on {r['accuracy']['split']}: {100 * acc['bgr']:.2f} as `rtseg eval` reads the images; "
            f"{100 * acc['bgr_via_420']:.2f} through 4:2:0 and the BGR path (a video of them today); "
            f"{100 * acc['i420']:.2f} through 4:2:0 and the I420 path",
            "",
        ]
    write_report(args.out, lines, {"environment": env, "args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
