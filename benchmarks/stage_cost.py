"""Issue-14 input: what each piece of the pipeline around the model costs a frame, alone, on one thread.

    python benchmarks/stage_cost.py [--model NAME] [--video vtest.avi] [--frames 300] [--out FILE]

The pieces are rtseg's own calls, timed in CPU time (all threads of the process) with OpenCV on one thread,
as a pipeline stage runs them: decoding (OpenCV's FFmpeg reader on one thread, BGR out), preprocessing for
the model's input size, the class map to frame size, class shares, the overlay at the default opacity, and
OpenCV's mp4v writer on those overlays. Then the pieces without decoding and encoding run through the real
pipeline (the video's frames from memory, the null backend, a sink that keeps nothing): what that costs
beyond the pieces' sum is the pipeline's own Python and thread hand-offs.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks")]
from common import cpu_ms, environment, header_markdown, write_report  # noqa: E402


def main() -> None:
    from rtseg.core.modelinfo import resolve_model
    from rtseg.runtime.allocator import keep_frame_buffers
    from rtseg.runtime.pipeline import Pipeline
    from rtseg.runtime.sinks import Sink, VideoSink
    from rtseg.runtime.slot import load_slot
    from rtseg.runtime.sources import ArraySource

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="whose input size and class map are used (default: the default model)")
    p.add_argument("--video", default=str(ROOT.parent / "shared/data/video/vtest.avi"))
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/stage_cost_cpu"))
    args = p.parse_args()

    keep_frame_buffers()  # as a pipeline runs
    pool = cv2.getNumThreads()
    cv2.setNumThreads(1)
    info = resolve_model(args.model)
    slot = load_slot(info, "onnxruntime")
    cap = cv2.VideoCapture(args.video, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    cap.read()  # the reader's start-up is not a frame's cost
    read, t0 = 0, time.process_time()
    while read < args.frames and cap.read()[0]:  # each frame dropped, as a pipeline's memory is reused
        read += 1
    decode = (time.process_time() - t0) / read * 1e3
    cap.release()
    cap, frames = cv2.VideoCapture(args.video), []
    while len(frames) < args.frames and (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    size = (frames[0].shape[1], frames[0].shape[0])
    masks = [slot.infer(slot.preprocess(f))["mask"][0] for f in frames]  # real class maps at model size
    post = slot.post
    full = [post.resize_mask(m, size) for m in masks]
    overlays = [post.overlay(f, m) for f, m in zip(frames, full)]
    pairs = list(zip(frames, full))
    rows = {"decode (OpenCV FFmpeg, 1 thread, BGR)": decode}
    buf = slot.pre.pool.acquire()
    rows["preprocess (resize, RGB, normalise, NCHW)"] = cpu_ms(lambda f: slot.pre(f, out=buf), frames)
    rows["class map to frame size"] = cpu_ms(lambda m: post.resize_mask(m, size), masks)
    rows["class shares"] = cpu_ms(post.class_shares, masks)
    rows["overlay (alpha 0.5)"] = cpu_ms(lambda fm: post.overlay(*fm), pairs)
    with tempfile.TemporaryDirectory() as d:
        sink = VideoSink(Path(d) / "o.mp4", 25.0, size)
        rows["OpenCV mp4v writer"] = cpu_ms(lambda o: sink.write(SimpleNamespace(overlay=o)), overlays)
        sink.close()
    total = sum(rows.values())

    class Drop(Sink):
        def write(self, rec) -> None:
            pass

    null = load_slot(info, "null")
    n = len(frames) * 10

    def through_pipeline(opencv_threads: int) -> float:
        cv2.setNumThreads(opencv_threads)
        before = resource.getrusage(resource.RUSAGE_SELF)
        Pipeline(ArraySource(frames[i % len(frames)] for i in range(n)), null, [Drop()], streams=2).run(handle_signals=False)
        after = resource.getrusage(resource.RUSAGE_SELF)
        return ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / n * 1e3

    serial = through_pipeline(1)  # OpenCV on each stage's own thread, as the pieces were timed
    piped = through_pipeline(pool)  # as rtseg runs: OpenCV's own pool too
    inner = sum(v for k, v in rows.items() if not k.startswith(("decode", "OpenCV")))

    env = environment()
    lines = [
        f"# The pipeline's pieces around the model, alone: CPU ms a frame ({info.name})",
        "",
        header_markdown(env),
        f"- video: `{args.video}`, {len(frames)} frames at {size[0]}x{size[1]}; model input "
        f"{info.input_size[0]}x{info.input_size[1]}; OpenCV on one thread; CPU time of the process",
        "",
        "| piece | CPU ms a frame |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v:.3f} |" for k, v in rows.items()]
    lines += [
        f"| **sum** | **{total:.3f}** |",
        "",
        f"- the pieces between decoding and encoding ({inner:.3f} ms alone) through the real pipeline (frames from "
        f"memory, null backend, a sink that keeps nothing, {n} frames): {serial:.3f} ms a frame with OpenCV on one "
        f"thread, so {serial - inner:.3f} ms of Python, queues and thread hand-offs; {piped:.3f} ms with OpenCV's "
        f"own thread pool as rtseg runs ({piped - serial:+.3f} ms for the pool)",
    ]
    write_report(
        args.out,
        lines,
        {
            "environment": env,
            "model": info.name,
            "rows_ms": rows,
            "sum_ms": total,
            "pipeline_inner_ms": piped,
            "pipeline_inner_serial_opencv_ms": serial,
            "inner_sum_ms": inner,
        },
    )


if __name__ == "__main__":
    main()
