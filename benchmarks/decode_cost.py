"""Issue-16 sizing input: what decoding one camera frame costs on this CPU, by resolution and codec.

    python benchmarks/decode_cost.py [--video vtest.avi] [--frames 300] [--repeats 3] [--out DIR]

Makes H.264 clips (PyAV, the `video` extra) and MJPEG frames (JPEG quality 90) at 576p (vtest's own
768x576), 720p and 1080p from vtest.avi, upscaled, then decodes each on one thread: H.264 with OpenCV's
FFmpeg reader (threads=1, as rtseg opens files up to 1280x720), JPEG with cv2.imdecode (what an MJPEG
camera costs). Figures: ms per frame, median over --repeats (and the range); cores needed per 15 FPS
camera = ms x 15 / 1000.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks")]
from common import environment, header_markdown, write_report  # noqa: E402

SIZES = {"576p": (768, 576), "720p": (1280, 720), "1080p": (1920, 1080)}


def source_frames(video: Path, n: int) -> list:
    cap, out = cv2.VideoCapture(str(video)), []
    while len(out) < n and (got := cap.read())[0]:
        out.append(got[1])
    cap.release()
    return out


def write_h264(path: Path, frames: list, size: tuple[int, int]) -> None:
    import av

    with av.open(str(path), "w") as box:
        stream = box.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"preset": "veryfast", "g": "30"}  # a camera's keyframe every 2 s
        for f in frames:
            img = cv2.resize(f, size, interpolation=cv2.INTER_LINEAR)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)


def h264_ms(path: Path) -> float:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    n, t0 = 0, time.perf_counter()
    while cap.grab():
        cap.retrieve()
        n += 1
    cap.release()
    return 1000 * (time.perf_counter() - t0) / max(n, 1)


def jpeg_ms(jpegs: list[bytes]) -> float:
    import numpy as np

    t0 = time.perf_counter()
    for j in jpegs:
        cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR)
    return 1000 * (time.perf_counter() - t0) / len(jpegs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=str(ROOT.parent / "shared/data/video/vtest.avi"))
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/decode_cost_cpu"))
    args = p.parse_args()
    cv2.setNumThreads(1)
    env, frames = environment(), source_frames(Path(args.video), args.frames)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        clips, jpegs = {}, {}
        for name, size in SIZES.items():
            clips[name] = Path(d) / f"{name}.mp4"
            write_h264(clips[name], frames, size)
            jpegs[name] = [cv2.imencode(".jpg", cv2.resize(f, size), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames]
        got = {(n, c): [] for n in SIZES for c in ("H.264", "MJPEG")}
        for _ in range(args.repeats):  # interleaved: every size and codec once per repeat
            for name in SIZES:
                got[(name, "H.264")].append(h264_ms(clips[name]))
                got[(name, "MJPEG")].append(jpeg_ms(jpegs[name]))
    for (name, codec), xs in got.items():
        med = statistics.median(xs)
        rows.append(
            {
                "resolution": name,
                "size": SIZES[name],
                "codec": codec,
                "ms_median": round(med, 2),
                "ms_min": round(min(xs), 2),
                "ms_max": round(max(xs), 2),
                "cores_per_15fps_camera": round(med * 15 / 1000, 3),
            }
        )
    lines = [
        "# Decoding one camera frame on this CPU, one thread",
        "",
        header_markdown(env),
        f"- {len(frames)} frames of `{args.video}` upscaled to each size; H.264 by libx264 veryfast, GOP 30, "
        f"decoded by OpenCV's FFmpeg reader on 1 thread; MJPEG = JPEG q90 by cv2.imdecode; {args.repeats} "
        "interleaved repeats, median (min-max)",
        "",
        "| resolution | codec | ms / frame | range | cores per 15 FPS camera |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['resolution']} {r['size'][0]}x{r['size'][1]} | {r['codec']} | {r['ms_median']} | "
        f"{r['ms_min']}-{r['ms_max']} | {r['cores_per_15fps_camera']} |"
        for r in rows
    ]
    write_report(args.out, lines, {**env, "rows": rows})


if __name__ == "__main__":
    main()
