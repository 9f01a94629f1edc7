"""`rtseg bench`: FPS and accuracy of every model x backend, beside what a user would pick instead.

For each of our models on each backend: val mIoU (and mAP for box models), model-only FPS and latency
(batch 1, warm-up, several repetitions, medians) and end-to-end FPS on a video with per-stage ms. Beside
them, in the same run and on the same input size and runtime: torchvision's LR-ASPP and DeepLabV3
MobileNetV3-Large architectures (FPS only: no weights can be downloaded here) and the naive tutorial
loop. Writes CSV, JSON, a Markdown table and an FPS-vs-mIoU plot with the Pareto front.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
from tqdm import tqdm

from ..core.errors import RtsegError
from ..core.machine import machine_description
from ..core.pareto import pareto_indices
from .evaluate import evaluate
from ..core.modelinfo import ModelInfo
from ..runtime.timing import percentiles, time_model


@dataclass
class BenchRow:
    model: str
    kind: str  # ours | peer | naive
    backend: str
    input_size: str
    params_m: float | None = None
    gflops: float | None = None
    miou: float | None = None
    map50: float | None = None
    model_fps: float | None = None
    model_ms_p50: float | None = None
    model_ms_p95: float | None = None
    e2e_fps: float | None = None
    stage_ms: dict = field(default_factory=dict)
    vs_ours: float | None = None  # e2e FPS / the reference model's e2e FPS (ONNX Runtime), same run
    pareto: bool = False
    note: str = ""


class Scored(NamedTuple):
    """One of our rows with both figures measured: a point of the FPS-vs-mIoU plot and its Pareto front."""

    row: BenchRow
    fps: float  # end-to-end
    miou: float


def scored_rows(rows: list[BenchRow]) -> list[Scored]:
    return [Scored(r, r.e2e_fps, r.miou) for r in rows if r.kind == "ours" and r.miou is not None and r.e2e_fps]


def measure_model_only(backend, x: np.ndarray, iters: int, reps: int, warmup: int = 10) -> dict:
    """Batch-1 throughput on one thread of calls (median over repetitions) and latency percentiles."""
    t = time_model(backend, x, iters, reps, streams=1, warmup=warmup)
    return {"fps": t.fps, "ms_p50": t.ms_p50, "ms_p95": t.ms_p95}


def measure_end_to_end(slot, video: str, frames: int, streams: int, temporal=None) -> dict:
    """The pipeline on the video, overlay written to a temporary MPEG-4 Part 2 mp4 (as `rtseg run --no-show
    --output bench.mp4 --codec mp4v`: PyAV's writer with frames kept in YUV 4:2:0 when PyAV is installed, else
    OpenCV's). `temporal`: key frames / smoothing settings (rtseg/temporal), as `--keyframe` and `--smooth`."""
    from ..temporal import Temporal
    from ..runtime.pipeline import Pipeline
    from ..runtime.sinks import open_video_sink
    from ..runtime.sources import LimitedSource, Source, open_source

    source = LimitedSource(open_source(video), frames)
    with tempfile.TemporaryDirectory() as d:
        sink = open_video_sink(Path(d) / "bench.mp4", source.fps or 30.0, source.frame_size, codec="mp4v")
        state = Temporal(temporal) if temporal is not None and temporal.active else None
        # a Source: its `skipped` is a read-only view of the inner source's, which the protocol types as an attribute
        stats = Pipeline(cast(Source, source), slot, [sink], streams=streams, temporal=state).run(handle_signals=False)
    return {
        "fps": stats.fps,
        "stage_ms": {s: round(percentiles(v)["mean"], 3) for s, v in stats.stage_ms.items()},
        "inferred": stats.frames_inferred,
        "frames": stats.frames_out,
    }


def pareto_flags(points: list[tuple[float, float]]) -> list[bool]:
    """For (fps, accuracy) points: True where the point is on the Pareto front (core/pareto.py)."""
    front = set(pareto_indices(points))
    return [i in front for i in range(len(points))]


def export_peers(input_size: tuple[int, int], folder: Path) -> list[tuple[str, Path, float, float]]:
    """torchvision's MobileNetV3-Large segmentation models, 11 classes, no weights, argmax in the graph."""
    import torch
    import torchvision
    import warnings

    class ArgmaxOut(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x)["out"].argmax(1).to(torch.uint8)

    peers = []
    for name in ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"):
        model = getattr(torchvision.models.segmentation, name)(weights=None, weights_backbone=None, num_classes=11)
        if hasattr(model, "aux_classifier"):
            model.aux_classifier = None
        path = folder / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                ArgmaxOut(model).eval(),
                (torch.zeros(1, 3, *input_size),),
                str(path),
                opset_version=17,
                dynamo=False,
                input_names=["image"],
                output_names=["mask"],
            )
        from ..models.deploy import count_gflops, count_params

        peers.append((f"torchvision {name}", path, count_params(model) / 1e6, count_gflops(model, input_size)))
    return peers


def keyframe_rows(
    info: ModelInfo,
    row: BenchRow,
    slot,
    video: str,
    frames: int,
    streams: int,
    keyframes,
    data: str | None,
    split: str,
    eval_images: int | None,
) -> list[BenchRow]:
    """The model with key frames (`--keyframes 2,3,auto`): end-to-end FPS on the same video, and the mIoU of
    the split run as a sequence (evaluation/sequence.py) when data is given in full (not with --quick)."""
    from ..temporal import TemporalSettings
    from .sequence import evaluate_sequence

    rows = []
    for kf in keyframes:
        settings = TemporalSettings(kf)
        e = measure_end_to_end(slot, video, frames, streams, settings)
        miou = None
        if data and eval_images is None and has_seg_task(info):
            miou = evaluate_sequence(slot, data, split, settings, progress=False)["miou"]
        rows.append(
            BenchRow(
                f"{info.name} keyframe {kf.interval}",
                "ours",
                row.backend,
                row.input_size,
                row.params_m,
                row.gflops,
                miou,
                None,
                row.model_fps,
                row.model_ms_p50,
                row.model_ms_p95,
                e["fps"],
                e["stage_ms"],
                note=f"model on {e['inferred']} of {e['frames']} frames, optical flow between; mIoU of {split} run as a sequence",
            )
        )
    return rows


def manifest_metrics(info: ModelInfo) -> tuple[str | None, dict]:
    """The manifest's figure for a model without --data: held-out drive 0006R0 where it has one that is truly
    held out (the selector ranks on it), else CamVid val; (key, metrics) or (None, {})."""
    metrics = info.entry.get("metrics", {})
    for key in ("camvid_holdout:0006R0", "camvid_val"):
        if key in metrics and not metrics[key].get("warning"):
            return key, metrics[key]
    return None, {}


def fp32_base(info: ModelInfo) -> ModelInfo | None:
    """The FP32 model an INT8 file was made from, when the manifest names it and it has PyTorch weights."""
    from ..core.modelinfo import resolve_model

    base = info.entry.get("base_model")
    if not base:
        return None
    try:
        found = resolve_model(base)
    except RtsegError:
        return None
    return found if found.entry.get("weights") else None


def has_seg_task(info: ModelInfo) -> bool:
    return info.task in ("seg", "segdet")


def run_bench(
    infos: list[ModelInfo],
    backends: list[str],
    data: str | None,
    split: str,
    video: str,
    frames: int,
    iters: int,
    reps: int,
    peers: bool,
    naive: bool,
    eval_images: int | None = None,
    progress: bool = True,
    keyframes: tuple = (),
) -> tuple[list[BenchRow], dict]:
    from ..backends import load_backend
    from ..runtime.pipeline import inference_layout
    from ..runtime.slot import load_slot

    if not Path(video).exists():
        raise RtsegError(f"no such video: {video}")
    cores = os.cpu_count() or 1
    rows: list[BenchRow] = []
    jobs = [(i, b) for i in infos for b in backends]
    bar = tqdm(total=len(jobs) + (2 if peers else 0) + (1 if naive else 0), desc="bench", disable=not progress)
    for info, backend_kind in jobs:
        h, w = info.input_size
        row = BenchRow(
            info.name, "ours", backend_kind, f"{h}x{w}", round(info.entry.get("params", 0) / 1e6, 3) or None, info.entry.get("gflops")
        )
        try:
            # the model alone, loaded as the pipeline's slot loads it (one shape, batch 1), with ONNX
            # Runtime's spinning thread pool on every core: what a loop of its own gets
            model_backend = load_backend(backend_kind, str(info.path), spin=backend_kind == "onnxruntime", fixed_size=(h, w))
        except RtsegError as e:
            bar.write(f"skip {info.name} on {backend_kind}: {e}")
            bar.update(1)
            continue
        slot = load_slot(info, backend_kind)
        if data:
            r = evaluate(slot, data, split, progress=False, max_images=eval_images)
            row.miou, row.map50 = r.get("miou"), (r.get("detection") or {}).get("map50")
        else:  # the manifest's numbers, themselves measured by rtseg eval on the shipped file
            split_key, m = manifest_metrics(info)
            row.miou, row.map50 = m.get("miou"), (m.get("detection") or {}).get("map50")
            if split_key:
                row.note = f"accuracy: the manifest's {split_key[len('camvid_') :]}"
        x = slot.pre(np.zeros((h, w, 3), np.uint8))
        m = measure_model_only(model_backend, x, iters, reps)
        row.model_fps, row.model_ms_p50, row.model_ms_p95 = m["fps"], m["ms_p50"], m["ms_p95"]
        streams, threads = inference_layout(None, None, live=False) if backend_kind == "onnxruntime" else (1, cores)
        if backend_kind == "onnxruntime":
            slot = load_slot(info, backend_kind, threads, pool_size=streams + 4)
        e2e = measure_end_to_end(slot, video, frames, streams)
        row.e2e_fps, row.stage_ms = e2e["fps"], e2e["stage_ms"]
        rows.append(row)
        if keyframes and has_seg_task(info):
            rows += keyframe_rows(info, row, slot, video, frames, streams, keyframes, data, split, eval_images)
        bar.update(1)
    ref = next((r for r in rows if r.kind == "ours" and r.backend == "onnxruntime"), rows[0] if rows else None)
    if ref is None:
        raise RtsegError("nothing was measured")
    ref_info = next(i for i in infos if i.name == ref.model)
    if peers:
        try:
            with tempfile.TemporaryDirectory() as d:
                for name, path, params_m, gflops in export_peers(ref_info.input_size, Path(d)):
                    peer_info = ModelInfo(name=name, path=path, input_size=ref_info.input_size)
                    backend = load_backend("onnxruntime", str(path), spin=True, fixed_size=tuple(ref_info.input_size))
                    slot = load_slot(peer_info, "onnxruntime")
                    x = slot.pre(np.zeros((*ref_info.input_size, 3), np.uint8))
                    m = measure_model_only(backend, x, iters, reps)
                    streams, threads = inference_layout(None, None, live=False)
                    e2e = measure_end_to_end(load_slot(peer_info, "onnxruntime", threads, pool_size=streams + 4), video, frames, streams)
                    rows.append(
                        BenchRow(
                            name,
                            "peer",
                            "onnxruntime",
                            ref.input_size,
                            round(params_m, 3),
                            round(gflops, 3),
                            None,
                            None,
                            m["fps"],
                            m["ms_p50"],
                            m["ms_p95"],
                            e2e["fps"],
                            e2e["stage_ms"],
                            note="architecture only: no weights can be downloaded here, so no mIoU",
                        )
                    )
                    bar.update(1)
        except ImportError:
            bar.write("peers skipped: they need torchvision (pip install 'rtseg[train]')")
    # the naive loop runs PyTorch weights: an INT8 reference's are those of the FP32 model it was quantized from
    weights_of = ref_info if ref_info.entry.get("weights") else fp32_base(ref_info)
    if naive and weights_of is not None:
        from .baselines import naive_loop

        with tempfile.TemporaryDirectory() as d:
            r = naive_loop(str(weights_of.path.with_name(weights_of.entry["weights"])), video, str(Path(d) / "n.mp4"), frames)
        rows.append(
            BenchRow(
                f"naive loop ({weights_of.name})",
                "naive",
                "torch",
                ref.input_size,
                ref.params_m,
                ref.gflops,
                None if weights_of is not ref_info else ref.miou,
                ref.map50,
                e2e_fps=r["fps"],
                note="OpenCV read, PyTorch eager, argmax, overlay, write",
            )
        )
        bar.update(1)
    bar.close()
    for row in rows:
        row.vs_ours = round(row.e2e_fps / ref.e2e_fps, 3) if row.e2e_fps and ref.e2e_fps else None
    scored = scored_rows(rows)
    for s, flag in zip(scored, pareto_flags([(s.fps, s.miou) for s in scored])):
        s.row.pareto = flag
    env = bench_environment(ref.model, video, frames, iters, reps, data, split, eval_images)
    return rows, env


def bench_environment(reference: str, video: str, frames: int, iters: int, reps: int, data, split, eval_images) -> dict:
    import cv2
    import onnxruntime

    from ..runtime.sinks import pyav_available

    env: dict[str, Any]  # for JSON: strings, numbers and the dict of versions
    env = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_description(),
        "versions": {
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "opencv": cv2.__version__,
            "numpy": np.__version__,
        },
        "reference": reference,
        "video": video,
        "frames": frames,
        "model_only": f"{reps} x {iters} inferences, median",
        # what measure_end_to_end's mp4v output goes through (the I420 path: runtime/yuv.py)
        "writer": "MPEG-4 Part 2 by PyAV, frames kept in YUV 4:2:0" if pyav_available() else "OpenCV's mp4v writer",
        "split": split if data else "manifest",
        "accuracy": (f"{split} split of {data}" + (f", first {eval_images} images only (quick)" if eval_images else ""))
        if data
        else (
            "engines/manifest.json's figures, measured by rtseg eval on the shipped files: held-out drive "
            "0006R0 where a model has one (drive-disjoint), else CamVid val (optimistic); each row says which"
        ),
    }
    try:
        import torch

        env["versions"]["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return env


def fmt(v, spec: str = ".1f", scale: float = 1.0) -> str:
    return "" if v is None else format(v * scale, spec)


def write_results(rows: list[BenchRow], env: dict, out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {"command": command, **env}
    (out / "bench.json").write_text(json.dumps({"environment": env, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    fields = [k for k in asdict(rows[0]) if k != "stage_ms"] + ["stage_ms"]
    with open(out / "bench.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow(asdict(r) | {"stage_ms": json.dumps(r.stage_ms)})
    md = [
        "# rtseg bench",
        "",
        f"- command: `{command}`",
        f"- date: {env['date']}",
        f"- machine: {env['machine']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"- model-only: batch 1, {env['model_only']}; end-to-end: `{env['video']}`, {env['frames']} frames, "
        f"overlay written to mp4 ({env.get('writer', 'OpenCV mp4v')})",
        f"- accuracy: {env['accuracy'] or 'not measured'}",
        f"- vs ours: end-to-end FPS / {env['reference']} on ONNX Runtime, same run",
        "",
        f"| model | backend | input | params (M) | GFLOPs | {env.get('split', 'val')} mIoU | {env.get('split', 'val')} mAP@0.5 "
        "| model FPS | p50 ms | p95 ms | "
        "end-to-end FPS | vs ours | Pareto |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in rows:
        md.append(
            f"| {r.model} | {r.backend} | {r.input_size} | {fmt(r.params_m, '.2f')} | {fmt(r.gflops, '.2f')} | "
            f"{fmt(r.miou, '.1f', 100)} | {fmt(r.map50, '.1f', 100)} | {fmt(r.model_fps)} | {fmt(r.model_ms_p50, '.2f')} | "
            f"{fmt(r.model_ms_p95, '.2f')} | {fmt(r.e2e_fps)} | {fmt(r.vs_ours, '.2f')}x | {'*' if r.pareto else ''} |"
        )
    notes = sorted({r.note for r in rows if r.note})
    md += [""] + [f"- {n}" for n in notes]
    stages = [r for r in rows if r.stage_ms]
    if stages:
        md += [
            "",
            "Per-stage mean ms in the end-to-end runs (stages overlap in threads):",
            "",
            "| model | backend | " + " | ".join(stages[0].stage_ms) + " |",
            "|---|---|" + "---:|" * len(stages[0].stage_ms),
        ]
        md += [f"| {r.model} | {r.backend} | " + " | ".join(f"{v:.2f}" for v in r.stage_ms.values()) + " |" for r in stages]
    (out / "bench.md").write_text("\n".join(md) + "\n")
    plot(rows, env, out / "bench.png")


def plot(rows: list[BenchRow], env: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    ours = scored_rows(rows)
    for backend, marker in (("onnxruntime", "o"), ("torch", "s")):
        pts = [p for p in ours if p.row.backend.startswith(backend)]
        if pts:
            ax.scatter([p.fps for p in pts], [100 * p.miou for p in pts], marker=marker, s=50, label=f"rtseg ({backend})")
            for p in pts:
                ax.annotate(p.row.model.replace("mnv2-", ""), (p.fps, 100 * p.miou), fontsize=7, xytext=(4, 4), textcoords="offset points")
    front = sorted((p for p in ours if p.row.pareto), key=lambda p: p.fps)
    if len(front) > 1:
        ax.plot([p.fps for p in front], [100 * p.miou for p in front], "k--", lw=1, label="Pareto front")
    others = [(r.model, r.e2e_fps) for r in rows if r.kind != "ours" and r.e2e_fps]
    for model, fps in others:  # no mIoU for these: a labelled vertical line at their FPS
        ax.axvline(fps, color="grey", lw=0.8, ls=":")
        ax.annotate(
            model, xy=(fps, 0.03), xycoords=("data", "axes fraction"), rotation=90, fontsize=7, va="bottom", ha="right", color="grey"
        )
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end FPS (log scale)")
    ax.set_ylabel(f"CamVid {env.get('split', 'val')} mIoU (%)")
    ax.set_title(f"rtseg: speed vs accuracy\n{env['machine']}, {env['date'][:10]}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
