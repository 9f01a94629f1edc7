"""Choosing a model for a frame rate before the first frame: the one function the CLI and the Python API share.

Profiles the shipped models measured for the task (once per machine, then cached), ranks them with the
selector and returns the starting choice together with the ladder (the Pareto front) the runtime
controller may move along.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import cast

from ..core.errors import RtsegError
from ..core.manifest import Manifest
from ..core.modelinfo import ModelInfo, resolve_model
from .profiling import ensure_profiles, last_settled, probe_variant, settle_key
from .ladder import HELD_OUT_SPLIT, Candidate, build_candidates, choose, pareto_front, ranked_on, ranking_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """The model to start with, the ladder the controller moves along, and the choice's place on it."""

    choice: Candidate
    ladder: list[Candidate]
    index: int
    why: str
    split: str = "val"  # what ranked the candidates
    settle_key: str = ""  # the command as far as the choice goes: where its runs settle is kept under it


def shipped_models() -> list[ModelInfo]:
    """Every model the shipped manifest lists, resolved."""
    return [resolve_model(name) for name in Manifest.load().names()]


def models_for_task(task: str, rank_by: str = "auto") -> tuple[list[ModelInfo], str]:
    """The shipped models measured for `task` on the ranking split, and that split: only these are profiled
    (a box model never serves seg; a model without a held-out figure is not ranked against those with one)."""
    # an INT8 file laid out for TensorRT engines runs slowly in ONNX Runtime: engines are built from it, it is
    # never a candidate of its own
    infos = [i for i in shipped_models() if i.entry.get("qdq") != "tensorrt"]
    split = ranking_split(infos, task, rank_by)
    return [i for i in infos if ranked_on(i, task, split)], split


def source_share(sources: int, streams: int, threads: int, cores: int | None = None) -> float:
    """The part of one source's profiled speed each of `sources` sources keeps when they share the cores:
    1 while their threads fit (sources x streams x threads <= cores), the cores over the threads beyond."""
    cores = cores or os.cpu_count() or 1
    return min(1.0, cores / max(1, sources * streams * threads))


def select_for_rate(
    target_fps: float,
    task: str,
    backend: str,
    streams: int,
    threads: int,
    margin: float = 1.1,
    max_latency: float | None = None,
    rank_by: str = "auto",
    sources: int = 1,
    cores: int | None = None,
    keyframes: bool = True,
) -> Selection:
    """The most accurate shipped model that holds `target_fps` here, and its ladder. On first use the speeds
    are quick estimates (the first frame comes within about a second); runs and `rtseg profile` refine them.
    A run of the same command here starts where the last one settled (one source only).

    With `sources` > 1 the rate is each source's, and the sources share this machine: a model's profiled
    speed (one source on `streams` x `threads`) counts in full while the sources' threads fit in the cores,
    and in proportion to what is left of them beyond (`source_share`); `cores`: the cores the sources may use
    (a Ray actor's share of its machine), all of them when None. `keyframes=False`: every-frame rungs only."""
    infos, split = models_for_task(task, rank_by)
    cores = cores or os.cpu_count() or 1
    share = source_share(sources, streams, threads, cores)

    def candidates_here() -> tuple[list[Candidate], dict]:
        profiles = ensure_profiles(infos, backend, streams, threads, quick=True, split=split)
        cands = build_candidates(infos, profiles, task, split)
        if not keyframes:  # the caller cannot change the key-frame interval while running (a group of sources)
            cands = [c for c in cands if c.keyframe == 1]
        if share < 1.0:
            cands = [replace(c, fps=c.fps * share, latency_ms=c.latency_ms / share) for c in cands]
        if not cands:
            raise RtsegError(f"no shipped model can do --task {task} with a measured accuracy on {split}")
        if max_latency:
            cands = [c for c in cands if c.latency_ms <= max_latency] or cands
        return cands, profiles

    candidates, profiles = candidates_here()
    key = settle_key(target_fps, task, split, margin, max_latency, keyframes)
    last = last_settled(backend, streams, threads, key) if sources == 1 else None
    ladder = pareto_front(candidates)
    resumed = next((c for c in ladder if last and c.name == last.get("rung")), None)
    if resumed is not None and last is not None:  # (a rung is resumed only from a `last`)
        choice = resumed
        why = (
            f"{choice.name}: where the last run of this command here settled ({last.get('fps')} FPS on it, "
            f"{str(last.get('date', ''))[:16].replace('T', ' ')}); it moves from there as the rate asks"
        )
    else:
        choice, why = choose(candidates, target_fps, margin, max_latency)
        for _ in range(2):  # a scaled first guess is probed before it is trusted: at most two probes
            guess = profiles.get(choice.name)
            if guess is None or guess.kind != "scaled":
                break
            info, size = choice.info, choice.input_size
            assert info is not None and size is not None  # build_candidates gives every candidate both
            probe_variant(info, cast("tuple[int, int]", tuple(size)), backend, streams, threads)
            candidates, profiles = candidates_here()
            choice, why = choose(candidates, target_fps, margin, max_latency)
        ladder = pareto_front(candidates)
    if choice not in ladder:  # only when the latency bound removed a faster model: keep the choice reachable
        ladder = sorted(set(ladder) | {choice}, key=lambda c: -c.fps)
    ranked = "drive 0006R0, held out of their training" if split == HELD_OUT_SPLIT else "val (optimistic)"
    if sources > 1:
        why += (
            f" for each of {sources} sources ({streams} stream(s) x {threads} thread(s) each on "
            f"{cores} core(s): {share:.2g} of one source's speed)"
        )
    return Selection(choice, ladder, ladder.index(choice), f"{why}; accuracy ranked on {ranked}", split, key)


def quick_bench_models(backend: str = "onnxruntime") -> list[ModelInfo]:
    """What `rtseg bench --quick` measures: the default model and the fastest model of the Pareto front here
    (speeds from this machine's profiles, estimated in a second or two where none is cached)."""
    from ..runtime.pipeline import inference_layout

    manifest = Manifest.load()
    default = resolve_model(manifest.default) if manifest.default else None
    infos, split = models_for_task("seg")
    streams, threads = inference_layout(None, None, live=False)
    every_frame = [
        c
        for c in build_candidates(infos, ensure_profiles(infos, backend, streams, threads, quick=True, split=split), "seg", split)
        if c.keyframe == 1
        and c.info is not None
        and c.input_size is not None  # (always: built from models)
        and tuple(c.input_size) == tuple(c.info.input_size)
    ]
    fastest = max(pareto_front(every_frame), key=lambda c: c.fps).info if every_frame else None
    chosen: list[ModelInfo] = []
    for info in (default, fastest):
        if info is not None and all(info.name != c.name for c in chosen):
            chosen.append(info)
    return chosen
