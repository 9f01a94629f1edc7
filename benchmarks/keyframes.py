"""Key frames with motion propagation and --smooth: what they cost in accuracy, what they buy in speed.

    python benchmarks/keyframes.py --data ../shared/data/camvid --video ../shared/data/video/vtest.avi \
        [--models A,B,...] [--intervals 1,2,3,4,5,6,auto] [--fps-frames 300] [--reps 3]

1. Accuracy on CamVid val (drive 0016E5, a 15 Hz labelled sequence of 101 frames), through the pipeline in
   frame order (rtseg/evaluation/sequence.py): mIoU with the model on every Nth frame, every phase of N
   pooled, against the model on every frame on the same frames in the same run. Absolute figures are
   optimistic (the held-out models trained on other frames of 0016E5); the drop from every frame is what this
   measures. Flow variants (DIS preset, warping from the key frame or frame to frame) for the first model.
2. Temporal inconsistency (share of flow-explained pixels whose class changed from the flow-warped previous
   frame) on the val clip and on vtest.avi, with and without --smooth, and smoothing's mIoU cost.
3. End-to-end FPS on vtest.avi (the `rtseg bench` measurement: decode, pipeline, overlay, MPEG-4 file) for each
   setting, settings interleaved over --reps repetitions: median and spread. vtest.avi is a fixed camera, the
   best case for `--keyframe auto`; auto and every frame are also timed on the val drive (a moving camera,
   its 101 frames written three times over to an MJPG file: two cuts where it starts over).
Writes benchmarks/results/keyframes_cpu.{md,json} and keyframes_cpu.png (mIoU against FPS, per model).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, header_markdown, write_report  # noqa: E402

from rtseg.core.modelinfo import resolve_model  # noqa: E402
from rtseg.data.camvid import eval_pairs, read_label  # noqa: E402
from rtseg.evaluation.bench import measure_end_to_end  # noqa: E402
from rtseg.evaluation.sequence import frame_confusions, run_sequence, score_sequence, temporal_inconsistency  # noqa: E402
from rtseg.runtime.pipeline import inference_layout  # noqa: E402
from rtseg.runtime.slot import load_slot  # noqa: E402
from rtseg.temporal import KeyFrames, TemporalSettings  # noqa: E402

HERE = Path(__file__).resolve().parent
MODELS = (
    "mnv2-100-dlv3p-os16-360x480-voc",
    "mnv2-100-dlv3p-os16-288x384-voc-int8",
    "mnv2-050-dlv3p-os16-240x320-voc",
    "mnv2-050-lraspp-os32-240x320-voc-kd",
)
VARIANTS = [
    ("ultrafast", "key"),
    ("fast", "key"),
    ("medium", "key"),
    ("ultrafast", "previous"),
    ("fast", "previous"),
    ("medium", "previous"),
]


def pooled(confusions):
    total = confusions[0].__class__(confusions[0].num_classes)
    for c in confusions:
        total.mat += c.mat
    return total


def video_frames(path: str, n: int) -> list:
    cap, frames = cv2.VideoCapture(path), []
    while len(frames) < n:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    return frames


def drive_clip(frames: list, path: Path, repeats: int = 3) -> str:
    """The val frames as a 15 FPS MJPG file, `repeats` times over: a moving camera to time `auto` on."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (w, h))
    for _ in range(repeats):
        for f in frames:
            writer.write(f)
    writer.release()
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "camvid"))
    ap.add_argument("--video", default=str(HERE.parent.parent / "shared" / "data" / "video" / "vtest.avi"))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--intervals", default="1,2,3,4,5,6,auto")
    ap.add_argument("--variant-intervals", default="2,3,4", help="intervals the flow variants are measured at")
    ap.add_argument("--consistency-frames", type=int, default=300, help="vtest.avi frames for the inconsistency")
    ap.add_argument("--fps-frames", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "keyframes_cpu"))
    args = ap.parse_args()
    env = environment()
    pairs = eval_pairs(args.data, "val")
    frames = [cv2.imread(str(i)) for i, _ in pairs]
    labels = [read_label(lab) for _, lab in pairs]
    clip = video_frames(args.video, args.consistency_frames)
    default = TemporalSettings()
    intervals = [KeyFrames.parse(k) for k in args.intervals.split(",")]
    doc = {
        "environment": env,
        "split": "CamVid val, drive 0016E5 (101 frames, 15 Hz); optimistic in absolute terms",
        "defaults": {
            "preset": "ultrafast with key frames, medium for --smooth alone",
            "anchor": default.anchor,
            "smooth_weight": default.smooth_weight,
        },
        "models": {},
    }
    streams, threads = inference_layout(None, None, live=False)
    tmp = tempfile.TemporaryDirectory()
    drive = drive_clip(frames, Path(tmp.name) / "drive.avi")
    for name in args.models.split(","):
        info = resolve_model(name)
        slot = load_slot(info, "onnxruntime", threads, pool_size=streams + 4)
        every = frame_confusions(run_sequence(slot, frames, TemporalSettings(), streams).masks, labels, len(info.classes))
        m = doc["models"][name] = {"every_frame_miou": pooled(every).miou() * 100, "intervals": {}, "variants": {}, "smooth": {}, "fps": {}}
        print(f"{name}: every frame {m['every_frame_miou']:.2f}", flush=True)
        for kf in intervals[1:] if intervals[0].every_frame else intervals:
            s = score_sequence(slot, frames, labels, replace(default, keyframes=kf), every, streams)
            m["intervals"][str(kf.interval)] = {
                "miou": s.miou * 100,
                "baseline": s.baseline.miou() * 100,
                "drop": s.drop,
                "inferred_share": s.inferred / s.frames,
                "forced": s.forced,
                "pixel_acc_by_distance": s.per_distance,
            }
            print(f"  keyframe {kf.interval}: {s.miou * 100:.2f} (drop {s.drop:.2f}, inferred {s.inferred}/{s.frames})", flush=True)
        if name == args.models.split(",")[0]:
            for preset, anchor in VARIANTS:
                for k in args.variant_intervals.split(","):
                    st = TemporalSettings(KeyFrames.parse(k), preset=preset, anchor=anchor)
                    s = score_sequence(slot, frames, labels, st, every, streams)
                    m["variants"][f"{preset}/{anchor}/{k}"] = {"miou": s.miou * 100, "drop": s.drop}
                    print(f"  {preset}/{anchor} keyframe {k}: drop {s.drop:.2f}", flush=True)
        plain_val = run_sequence(slot, frames, TemporalSettings(), streams).masks
        plain_clip = run_sequence(slot, clip, TemporalSettings(), streams).masks
        smooth = replace(default, smooth=True)
        s = score_sequence(slot, frames, labels, smooth, every, streams)
        m["smooth"] = {
            "miou": s.miou * 100,
            "drop": s.drop,
            "val_inconsistency": [
                temporal_inconsistency(frames, plain_val) * 100,
                temporal_inconsistency(frames, run_sequence(slot, frames, smooth, streams).masks) * 100,
            ],
            "video_inconsistency": [
                temporal_inconsistency(clip, plain_clip) * 100,
                temporal_inconsistency(clip, run_sequence(slot, clip, smooth, streams).masks) * 100,
            ],
        }
        print(
            f"  smooth: drop {s.drop:.2f}, inconsistency val {m['smooth']['val_inconsistency']}, "
            f"video {m['smooth']['video_inconsistency']}",
            flush=True,
        )
        settings = {str(kf.interval): replace(default, keyframes=kf) for kf in intervals}
        settings["1+smooth"] = smooth
        runs: dict[str, list[float]] = {k: [] for k in settings}
        on_drive: dict[str, list[float]] = {"1": [], "auto": []}
        for _ in range(args.reps):  # interleaved: a slower minute of the machine hits every setting alike
            for k, st in settings.items():
                runs[k].append(measure_end_to_end(slot, args.video, args.fps_frames, streams, st)["fps"])
            for k in on_drive:
                on_drive[k].append(measure_end_to_end(slot, drive, 10**6, streams, settings[k])["fps"])
        for k, v in runs.items():
            m["fps"][k] = {"median": statistics.median(v), "min": min(v), "max": max(v)}
        m["drive_fps"] = {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in on_drive.items()}
        print(
            "  e2e FPS: "
            + ", ".join(f"{k} {v['median']:.1f}" for k, v in m["fps"].items())
            + "; on the drive: "
            + ", ".join(f"{k} {v['median']:.1f}" for k, v in m["drive_fps"].items()),
            flush=True,
        )
        slot.close()
    report(doc, args, streams, threads)


def report(doc: dict, args, streams: int, threads: int) -> None:
    env = doc["environment"]
    lines = [
        "# Key frames with motion propagation, and --smooth (CPU)",
        "",
        header_markdown(env),
        f"- layout: {streams} stream(s) x {threads} thread(s), ONNX Runtime CPU; flow: OpenCV DIS "
        f"'{doc['defaults']['preset']}' at model resolution, warped from the {doc['defaults']['anchor']} frame",
        f"- accuracy: {doc['split']}; every phase of an interval pooled, the every-frame figure on the same frames",
        f"- FPS: end to end on {Path(args.video).name} ({args.fps_frames} frames, overlay to an MPEG-4 file), "
        f"median of {args.reps} interleaved runs (min-max)",
        "",
    ]
    lines += [
        "## mIoU (val sequence) and end-to-end FPS by key-frame interval",
        "",
        "| model | setting | mIoU | drop vs every frame | model runs on | FPS | FPS x |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in doc["models"].items():
        base_fps = m["fps"]["1"]["median"]
        lines.append(
            f"| {name} | every frame | {m['every_frame_miou']:.2f} | - | 100 % | "
            f"{base_fps:.1f} ({m['fps']['1']['min']:.1f}-{m['fps']['1']['max']:.1f}) | 1.00 |"
        )
        for k, r in m["intervals"].items():
            f = m["fps"][k]
            lines.append(
                f"| {name} | keyframe {k} | {r['miou']:.2f} | {r['drop']:.2f} | {r['inferred_share'] * 100:.0f} % | "
                f"{f['median']:.1f} ({f['min']:.1f}-{f['max']:.1f}) | {f['median'] / base_fps:.2f} |"
            )
        sm, f = m["smooth"], m["fps"]["1+smooth"]
        lines.append(
            f"| {name} | --smooth | {sm['miou']:.2f} | {sm['drop']:.2f} | 100 % | "
            f"{f['median']:.1f} ({f['min']:.1f}-{f['max']:.1f}) | {f['median'] / base_fps:.2f} |"
        )
    first = next(iter(doc["models"].values()))
    if first["variants"]:
        lines += [
            "",
            f"## Flow variants ({next(iter(doc['models']))}): mIoU drop vs every frame",
            "",
            "| DIS preset | warped from | " + " | ".join(f"keyframe {k}" for k in args.variant_intervals.split(",")) + " |",
            "|---|---|" + "---:|" * len(args.variant_intervals.split(",")),
        ]
        for preset, anchor in VARIANTS:
            lines.append(
                f"| {preset} | {anchor} frame | "
                + " | ".join(f"{first['variants'][f'{preset}/{anchor}/{k}']['drop']:.2f}" for k in args.variant_intervals.split(","))
                + " |"
            )
    lines += [
        "",
        "## `--keyframe auto` on a moving camera (the val drive as a clip, three times over)",
        "",
        "| model | every frame FPS | auto FPS | FPS x | auto: model runs on (val) | auto mIoU drop |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in doc["models"].items():
        d, a = m["drive_fps"], m["intervals"].get("auto")
        if a:
            lines.append(
                f"| {name} | {d['1']['median']:.1f} ({d['1']['min']:.1f}-{d['1']['max']:.1f}) | "
                f"{d['auto']['median']:.1f} ({d['auto']['min']:.1f}-{d['auto']['max']:.1f}) | "
                f"{d['auto']['median'] / d['1']['median']:.2f} | {a['inferred_share'] * 100:.0f} % | {a['drop']:.2f} |"
            )
    lines += [
        "",
        "## Temporal inconsistency (% of flow-explained pixels whose class flips), with and without --smooth",
        "",
        "| model | val clip | val --smooth | change | vtest.avi | vtest --smooth | change | mIoU cost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in doc["models"].items():
        v, c = m["smooth"]["val_inconsistency"], m["smooth"]["video_inconsistency"]
        lines.append(
            f"| {name} | {v[0]:.2f} | {v[1]:.2f} | {(v[1] / v[0] - 1) * 100:+.0f} % | {c[0]:.2f} | {c[1]:.2f} | "
            f"{(c[1] / c[0] - 1) * 100:+.0f} % | {m['smooth']['drop']:.2f} |"
        )
    write_report(args.out, lines, doc)
    plot(doc, Path(args.out).with_suffix(".png"))


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for name, m in doc["models"].items():
        pts = [(m["fps"]["1"]["median"], m["every_frame_miou"], "1")]
        pts += [(m["fps"][k]["median"], r["miou"], k) for k, r in m["intervals"].items() if k != "auto"]
        fixed = sorted(pts, key=lambda p: p[0])
        (line,) = ax.plot([p[0] for p in fixed], [p[1] for p in fixed], "o-", label=name)
        ax.plot([pts[0][0]], [pts[0][1]], "s", color=line.get_color(), markersize=9)  # every frame
        for x, y, k in pts:
            ax.annotate(k, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
        if "auto" in m["intervals"] and "drive_fps" in m:  # timed on the moving drive, scaled to vtest's every frame
            d = m["drive_fps"]
            x = m["fps"]["1"]["median"] * d["auto"]["median"] / d["1"]["median"]
            ax.plot([x], [m["intervals"]["auto"]["miou"]], "x", color=line.get_color(), markersize=9)
    ax.set_xlabel("end-to-end FPS (vtest.avi, this machine)")
    ax.set_ylabel("mIoU on CamVid val sequence (optimistic)")
    ax.set_title("Key-frame interval (squares: every frame; x: auto, its speed-up timed on the drive)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
