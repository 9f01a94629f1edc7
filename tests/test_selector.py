"""The selector as users rely on it: the right first model, down under load, up with headroom, no flapping."""

import json

import numpy as np
import pytest

from helpers import nearest_centre_onnx
from test_pipeline import Collect, FileLikeSource, make_slot

from rtseg.selection.adaptive import AdaptiveRunner
from rtseg.runtime.pipeline import Pipeline
from rtseg.selection.ladder import Candidate, Controller, ControllerConfig, choose, pareto_front

FAST, MID, SLOW = Candidate("fast", 0.50, 100.0, 20.0), Candidate("mid", 0.60, 50.0, 40.0), Candidate("slow", 0.70, 25.0, 80.0)
DOMINATED = Candidate("dominated", 0.55, 40.0, 50.0)  # slower and less accurate than mid
LADDER = [FAST, MID, SLOW]


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def simulate(controller, clock, rate_of, seconds, events=None):
    """Frames arrive at the rate the current model achieves at time t (rate_of(t, model)); switches apply at once."""
    events = [] if events is None else events
    while clock.t < seconds:
        rate = rate_of(clock.t, controller.ladder[controller.index])
        clock.t += 1.0 / rate
        new = controller.observe(rate)
        if new is not None:
            events.append((round(clock.t, 2), controller.ladder[controller.index].name, controller.ladder[new].name))
            controller.switched(new)
    return events


def test_pareto_front_drops_dominated_models():
    assert pareto_front([SLOW, DOMINATED, FAST, MID]) == [FAST, MID, SLOW]


@pytest.mark.parametrize("target,expected", [(20, "slow"), (30, "mid"), (45, "mid"), (60, "fast"), (90, "fast")])
def test_first_choice_is_the_most_accurate_that_holds_the_target(target, expected):
    choice, why = choose(LADDER + [DOMINATED], target, margin=1.1)
    assert choice.name == expected
    assert expected in why


def test_no_model_fast_enough_picks_the_fastest_and_warns():
    choice, why = choose(LADDER, 500)
    assert choice is FAST and why.startswith("WARNING") and "100.0 FPS" in why


def test_latency_bound_is_respected():
    choice, _ = choose(LADDER, 10, max_latency_ms=45)
    assert choice is MID


def machine(load_from=None, factor=0.4):
    """Each model runs at its profiled FPS; from `load_from` seconds on, a competing load slows all by `factor`."""
    return lambda t, m: m.fps * (factor if load_from is not None and t >= load_from else 1.0)


def test_steps_down_under_load_and_then_holds_the_target():
    clock = FakeClock()
    c = Controller(LADDER, 1, target_fps=30, clock=clock)
    events = simulate(c, clock, machine(load_from=10), 40)
    assert events[0][1:] == ("mid", "fast") and 10 < events[0][0] < 10 + 1.0
    assert LADDER[c.index] is FAST and len(events) == 1  # 100 x 0.4 = 40 >= 30: stays, never tries mid again


def test_steps_up_with_sustained_headroom():
    clock = FakeClock()
    c = Controller(LADDER, 0, target_fps=20, clock=clock)  # started cautiously on the fastest
    events = simulate(c, clock, machine(), 30)
    # 100 FPS predicts mid at 50 and slow at 25 >= 20 x 1.15: one step at a time, each after the wait
    assert [e[1:] for e in events] == [("fast", "mid"), ("mid", "slow")]
    assert events[0][0] >= 4.0 and events[1][0] - events[0][0] >= 4.0


def test_noise_around_the_target_does_not_flap():
    clock = FakeClock()
    c = Controller(LADDER, 1, target_fps=40, clock=clock)
    rng = np.random.default_rng(0)
    # mid at 45 +- 8 FPS in short bursts: dips under 40 never last the 1 s it takes to step down
    noisy = lambda t, m: m.fps * 0.9 + 8 * np.sin(t * 2 * np.pi / 0.6) + rng.normal(0, 1)  # noqa: E731
    assert simulate(c, clock, noisy, 60) == []


def test_far_below_target_it_skips_rungs_that_would_fail_too():
    clock = FakeClock()
    c = Controller(LADDER, 2, target_fps=40, clock=clock)  # slow at 25: mid (50) holds 40, fast too
    events = simulate(c, clock, machine(), 10)
    assert events[0][1:] == ("slow", "mid")  # the most accurate that holds it, in one move
    clock2 = FakeClock()
    c2 = Controller(LADDER, 2, target_fps=60, clock=clock2)  # only fast (100) holds 60: straight there
    assert simulate(c2, clock2, machine(), 10)[0][1:] == ("slow", "fast")


def test_a_model_that_misses_the_target_is_not_kept():
    clock = FakeClock()
    c = Controller(LADDER, 2, target_fps=30, clock=clock)  # slow at 25 < 30: must leave it
    events = simulate(c, clock, machine(), 20)
    assert events and events[0][1:] == ("slow", "mid") and events[0][0] <= ControllerConfig().min_dwell_s + 1.5


def test_a_failed_step_up_waits_longer_before_retrying():
    clock = FakeClock()
    c = Controller(LADDER, 0, target_fps=34, clock=clock)
    # the profile promises mid at 50, but on this content it really does 30 (< 34): each try fails
    rate = lambda t, m: {"fast": 100.0, "mid": 30.0, "slow": 15.0}[m.name]  # noqa: E731
    events = simulate(c, clock, rate, 120)
    ups = [e[0] for e in events if e[1:] == ("fast", "mid")]
    assert len(ups) >= 2
    gaps = np.diff(ups)
    assert all(b > a for a, b in zip(gaps, gaps[1:])) or len(gaps) == 1
    assert len(events) <= 8  # a handful of probes in two minutes, not a switch every few seconds


def test_switching_inside_a_running_pipeline(tmp_path):
    """A file run where the start model is too slow: the runner loads the fast one aside and switches;
    every frame still comes out once, in order, and the switch is in the stats and on the frame."""
    model = nearest_centre_onnx(tmp_path / "m.onnx")
    slow_slot = make_slot(model, delay_s=0.02, name="slow")  # ~50 FPS at most
    fast_slot = make_slot(model, name="fast")
    ladder = [Candidate("fast", 0.5, 500.0, 5.0), Candidate("slow", 0.7, 50.0, 20.0)]
    sink = Collect()
    pipeline = Pipeline(FileLikeSource(400), slow_slot, [sink])
    cfg = ControllerConfig(window_s=0.3, down_after_s=0.3, min_dwell_s=0.3, up_after_s=60)
    runner = AdaptiveRunner(pipeline, Controller(ladder, 1, target_fps=150, config=cfg), lambda c: fast_slot, live=False, streams=1)
    pipeline.on_frame = runner.on_frame
    stats = pipeline.run(handle_signals=False)
    assert stats.frames_in == stats.frames_out == 400
    assert [r[0] for r in sink.records] == list(range(400))
    assert [r[1] for r in sink.records] == [i % 11 for i in range(400)]
    assert [(e["from"], e["to"], e["direction"]) for e in runner.switches] == [("slow", "fast", "down")]
    assert stats.frames_by_model["fast"] > 0 and stats.frames_by_model["slow"] > 0


def test_target_fps_selects_profiles_once_and_reports(tmp_path):
    pytest.importorskip("torch")
    from helpers import make_tiny_zoo, run_cli, write_clip

    from rtseg.core.manifest import Manifest

    engines = make_tiny_zoo(tmp_path / "engines")
    m = Manifest.load(engines / "manifest.json")
    m.models[1]["metrics"]["camvid_val@48x64"] = {"miou": 0.42}  # the bigger model, run smaller
    # a box-only model is not a segmentation candidate, so it is never profiled for --task seg
    m.models.append({**m.models[0], "name": "boxes-only", "task": "det", "metrics": {"camvid_val": {"detection": {"map50": 0.5}}}})
    m.save()
    env = {**__import__("os").environ, "RTSEG_ENGINES_DIR": str(engines), "RTSEG_CACHE_DIR": str(tmp_path / "cache")}
    clip = write_clip(tmp_path / "c.avi", 30, size=(96, 128))
    stats = tmp_path / "s.json"
    res = run_cli("run", clip, "--target-fps", "1", "--no-show", "--stats", stats, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    # first use: quick estimates of two models, one also at 48x64 (the box-only model is not a candidate)
    assert "estimating 3 model x size variant(s)" in res.stderr and "boxes-only" not in res.stderr
    assert "selector: mnv2-050-dlv3p-os16-64x96: the most accurate" in res.stderr  # 45 mIoU beats 42 and 40
    assert json.loads(stats.read_text())["model"] == "mnv2-050-dlv3p-os16-64x96"
    res = run_cli("run", clip, "--target-fps", "1e6", "--no-show", "--stats", stats, env=env, timeout=300)
    assert res.returncode == 0 and "estimating" not in res.stderr and "profiling" not in res.stderr  # cached
    assert "WARNING: no model reaches" in res.stderr
    res = run_cli("profile", env=env)  # the full measurement replaces the estimates, and says what it holds
    # every shipped model (the box-only one too), and the bigger one also at 48x64
    assert res.returncode == 0 and res.stderr.count("profiling") == 4 and "estimate" not in res.stdout.split("kind:")[0]
    res = run_cli("models", "--pareto", env=env)
    assert res.returncode == 0 and "mnv2-050-dlv3p-os16-64x96@48x64" in res.stdout


@pytest.fixture
def zoo_cache(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from helpers import make_tiny_zoo

    from rtseg.core.modelinfo import resolve_model

    engines = make_tiny_zoo(tmp_path / "engines")
    monkeypatch.setenv("RTSEG_CACHE_DIR", str(tmp_path / "cache"))
    return [resolve_model(str(p)) for p in sorted(engines.glob("*.onnx"))]


def test_two_runs_profiling_at_once_measure_each_model_once(zoo_cache, monkeypatch):
    import logging
    import threading

    from rtseg.selection import profiling

    calls = []
    other_run_arrived = threading.Event()  # the other run waits on the lock, or (a lock that locks nothing) measures

    class Arrivals(logging.Handler):
        def emit(self, record):
            if "waiting for another rtseg" in record.getMessage():
                other_run_arrived.set()

    def fake_profile(info, backend, streams, threads, frames, size, keyframe=1):
        calls.append(info.name)
        if len(calls) == 1:  # the first measurement lasts until the other run is there: they certainly overlap
            other_run_arrived.wait(30)
        else:
            other_run_arrived.set()
        return profiling.Profile(
            profiling.variant_name(info, size), profiling.model_checksum(info), 100, 10, 10, 80, 12, 12, frames, "now", "measured", 0.0
        )

    monkeypatch.setattr(profiling, "profile_model", fake_profile)
    handler, level = Arrivals(), profiling.log.level
    profiling.log.addHandler(handler)
    profiling.log.setLevel(logging.INFO)  # the "waiting" line is an info line
    results = []
    try:
        runs = [
            threading.Thread(target=lambda: results.append(profiling.ensure_profiles(zoo_cache, "onnxruntime", 1, 1))) for _ in range(2)
        ]
        for t in runs:
            t.start()
        for t in runs:
            t.join(60)
    finally:
        profiling.log.removeHandler(handler)
        profiling.log.setLevel(level)
    assert not any(t.is_alive() for t in runs) and len(results) == 2
    assert other_run_arrived.is_set()  # the runs overlapped (the second waited on the first)
    assert sorted(calls) == sorted(i.name for i in zoo_cache)  # each once, not once per run
    assert results[0].keys() == results[1].keys() and all(p.clean for p in results[0].values())


def test_a_profile_taken_beside_other_work_is_marked_busy_and_measured_again(zoo_cache):
    import subprocess
    import sys

    from rtseg.core.machine import usable_cpus
    from rtseg.selection import profiling

    # a busy loop on every core this process may use, each running before the measurement starts (it says so
    # from inside its loop's first round)
    hog = "import sys\nsys.stdout.write('busy\\n'); sys.stdout.flush()\nwhile True: pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", hog], stdout=subprocess.PIPE, text=True) for _ in usable_cpus()]
    try:
        for h in hogs:
            assert h.stdout.readline() == "busy\n", "a busy loop did not start"
        busy = profiling.ensure_profiles(zoo_cache[:1], "onnxruntime", 1, 1, frames=30)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
            h.stdout.close()
    (p,) = busy.values()
    assert p.busy and not p.clean and p.others_load > profiling.BUSY_SHARE
    cache = profiling.ProfileCache(profiling.machine_key("onnxruntime", 1, 1))
    assert cache.get(zoo_cache[0]).busy  # kept, with its mark
    # the selector takes it as it is; a full profile measures it again
    assert profiling.ensure_profiles(zoo_cache[:1], "onnxruntime", 1, 1, quick=True)[p.model].date == p.date


def test_a_run_teaches_the_profile_its_real_speed(zoo_cache):
    from rtseg.selection import profiling

    est = profiling.ensure_profiles(zoo_cache, "onnxruntime", 2, 1, quick=True)
    assert {p.kind for p in est.values()} == {"estimate"}
    name = next(iter(est))
    info = next(i for i in zoo_cache if i.name == name)
    learned = profiling.learn_from_run("onnxruntime", 2, 1, {name: (300, 3.0)}, {name: (info, None)})
    assert learned == [name]
    p = profiling.ProfileCache(profiling.machine_key("onnxruntime", 2, 1)).get(info)
    assert p.kind == "online" and p.e2e_fps == 100.0
    # a short run teaches nothing, and a full measurement is never replaced by a run's figure
    assert profiling.learn_from_run("onnxruntime", 2, 1, {name: (10, 0.1)}, {name: (info, None)}) == []


def test_ranking_takes_the_held_out_drive_when_the_zoo_has_it():
    from rtseg.core.modelinfo import ModelInfo
    from rtseg.selection.ladder import HELD_OUT_SPLIT, accuracy_of, ranking_split

    def model(name, **metrics):
        return ModelInfo(name=name, path=None, input_size=(64, 96), entry={"metrics": metrics})

    held = {f"camvid_{HELD_OUT_SPLIT}": {"miou": 0.44}}
    trained_on_it = {f"camvid_{HELD_OUT_SPLIT}": {"miou": 0.67, "warning": "drive 0006R0 was in its training data"}}
    old = model("old", camvid_val={"miou": 0.66}, **trained_on_it)
    a, b = model("a", **held), model("b", **held)
    assert ranking_split([old, a], "seg") == "val"  # one held-out model cannot be ranked alone
    a_int8 = ModelInfo(name="a-int8", path=None, input_size=(64, 96), entry={"metrics": held, "base_model": "a"})
    assert ranking_split([old, a, a_int8], "seg") == "val"  # nor with its own INT8 sibling
    with pytest.raises(Exception, match="rank_by must be one of"):
        ranking_split([a, b], "seg", prefer="held-out")
    assert ranking_split([old, a, b], "seg") == HELD_OUT_SPLIT
    assert ranking_split([old, a, b], "seg", prefer="val") == "val"
    assert accuracy_of(old, "seg", split=HELD_OUT_SPLIT) is None  # a drive that trained it measures memory
    assert accuracy_of(a, "seg", split=HELD_OUT_SPLIT) == 0.44 and accuracy_of(a, "seg") is None


def test_several_sources_budget_the_cores_between_them(monkeypatch):
    """--target-fps 15 on four sources: each source must hold 15 with the others beside it."""
    from rtseg.selection import start as pick

    assert pick.source_share(2, 1, 1, cores=2) == 1.0  # their threads fit: each keeps its profiled speed
    assert pick.source_share(4, 1, 1, cores=2) == 0.5  # twice the threads the cores hold: half each
    assert pick.source_share(8, 2, 1, cores=4) == 0.25

    monkeypatch.setattr(pick, "models_for_task", lambda task, rank_by: ([], "val"))
    monkeypatch.setattr(pick, "ensure_profiles", lambda *a, **k: {})
    monkeypatch.setattr(pick, "build_candidates", lambda *a: list(LADDER))  # fast 100, mid 50, slow 25 FPS alone
    monkeypatch.setattr(pick.os, "cpu_count", lambda: 2)
    assert pick.select_for_rate(20, "seg", "onnxruntime", 1, 1).choice.name == "slow"
    four = pick.select_for_rate(20, "seg", "onnxruntime", 1, 1, sources=4)  # each gets half: 50, 25, 12.5
    assert four.choice.name == "mid" and "for each of 4 sources" in four.why
    assert pick.select_for_rate(20, "seg", "onnxruntime", 1, 1, sources=8).choice.name == "fast"  # 25, 12.5, 6.25


def test_target_fps_over_several_sources_picks_one_model_for_all(tmp_path):
    pytest.importorskip("torch")
    from helpers import make_tiny_zoo, run_cli, write_clip

    engines = make_tiny_zoo(tmp_path / "engines")
    env = {**__import__("os").environ, "RTSEG_ENGINES_DIR": str(engines), "RTSEG_CACHE_DIR": str(tmp_path / "cache")}
    clips = [write_clip(tmp_path / f"c{i}.avi", 10, size=(96, 128)) for i in range(3)]
    out = tmp_path / "out"
    out.mkdir()
    stats = tmp_path / "s.json"
    res = run_cli("run", *clips, "--target-fps", "1", "--output-dir", out, "--no-show", "--stats", stats, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "for each of 3 sources" in res.stderr and "target 1 met" in res.stderr
    doc = json.loads(stats.read_text())
    assert doc["target_fps"] == 1 and {s["frames_out"] for s in doc["sources"].values()} == {10}


def test_a_group_of_sources_switches_together_when_the_slowest_misses_the_target(tmp_path):
    """Two file sources on one model that is too slow for them both: the group runner loads the fast model
    once and moves both; every frame of each source comes out once, in order, with its own class."""
    import threading

    from rtseg.runtime.slot import ModelSlot
    from rtseg.selection.group_adaptive import GroupAdaptiveRunner

    model = nearest_centre_onnx(tmp_path / "m.onnx")
    slow, fast = make_slot(model, delay_s=0.02, name="slow"), make_slot(model, name="fast")
    loads = []

    def load(c):
        loads.append(c.name)
        return fast

    def around(first):
        return ModelSlot.for_backend(first.info, first.backend, first.input_size)

    ladder = [Candidate("fast", 0.5, 500.0, 5.0), Candidate("slow", 0.7, 50.0, 20.0)]
    cfg = ControllerConfig(window_s=0.3, down_after_s=0.3, min_dwell_s=0.3, up_after_s=60)
    runner = GroupAdaptiveRunner(Controller(ladder, 1, target_fps=100, config=cfg), slow, load, around)
    sinks, pipelines = [Collect(), Collect()], []
    for k, sink in enumerate(sinks):
        pipelines.append(Pipeline(FileLikeSource(300), runner.slot_for(f"s{k}"), [sink]))
        runner.attach(f"s{k}", pipelines[-1])
    assert pipelines[0].slot is slow and pipelines[1].slot is not slow and pipelines[1].slot.backend is slow.backend
    stats = [None, None]
    threads = [threading.Thread(target=lambda k=k: stats.__setitem__(k, pipelines[k].run(handle_signals=False))) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        # no bound of its own: on a loaded machine (a niced mutation run beside a training job) 300 frames of a
        # 20 ms model took longer than the 60 s once allowed here; pytest-timeout still stops a hang
        t.join()
    assert loads == ["fast"]  # loaded once for both sources
    assert [(e["from"], e["to"], e["sources"]) for e in runner.switches] == [("slow", "fast", 2)]
    for s, sink in zip(stats, sinks):
        assert s.frames_in == s.frames_out == 300 and [r[0] for r in sink.records] == list(range(300))
        assert [r[1] for r in sink.records] == [i % 11 for i in range(300)]
        assert s.frames_by_model["fast"] > 0 and s.frames_by_model["slow"] > 0
    assert pipelines[0].slot is fast and pipelines[1].slot.backend is fast.backend and pipelines[1].slot is not fast


def test_profiles_cached_by_an_older_runtime_are_not_used(monkeypatch, tmp_path):
    from rtseg.selection import profiling

    now = profiling.machine_key("onnxruntime", 2, 1)
    monkeypatch.setattr(profiling, "RUNTIME_REVISION", profiling.RUNTIME_REVISION - 1)
    older = profiling.machine_key("onnxruntime", 2, 1)
    assert older != now and profiling.ProfileCache(older, tmp_path).path != profiling.ProfileCache(now, tmp_path).path


# -- key-frame rungs: (model, size, key interval) ------------------------------------------------------
def held_out_model(name, miou, drops=None):
    from rtseg.core.modelinfo import ModelInfo
    from rtseg.selection.ladder import HELD_OUT_SPLIT

    metrics = {f"camvid_{HELD_OUT_SPLIT}": {"miou": miou}}
    metrics.update({f"camvid_val+keyframe{k}": {"miou": 0.8, "drop": d} for k, d in (drops or {}).items()})
    return ModelInfo(name=name, path=None, input_size=(64, 96), entry={"metrics": metrics})


def profile(name, fps):
    from rtseg.selection.profiling import Profile

    return Profile(name, "x", fps, 1, 1, fps, 10, 20, 60, "now")


def test_key_frame_rungs_are_candidates_with_the_accuracy_their_interval_lost():
    from rtseg.selection.ladder import HELD_OUT_SPLIT, build_candidates

    big = held_out_model("big", 0.48, {2: 0.58, 3: 1.34})
    small = held_out_model("small", 0.42)
    profiles = {
        "big": profile("big", 35),
        "big/kf2": profile("big/kf2", 60),
        "big/kf3": profile("big/kf3", 75),
        "small": profile("small", 90),
    }
    cands = {c.name: c for c in build_candidates([big, small], profiles, "seg", HELD_OUT_SPLIT)}
    assert set(cands) == {"big", "big/kf2", "big/kf3", "small"}
    assert cands["big/kf3"].accuracy == pytest.approx(0.48 - 0.0134) and cands["big/kf3"].keyframe == 3
    assert cands["big/kf2"].variant == "big" and cands["big/kf2"].fps == 60
    # a box task has no propagated figure: no key-frame rungs
    assert all(c.keyframe == 1 for c in build_candidates([big], profiles, "det", HELD_OUT_SPLIT))
    # between the small model's rate and the big one's, the big model on every 3rd frame is the better buy
    choice, why = choose(list(cands.values()), 60, margin=1.1)
    assert choice.name == "big/kf3" and "every 3 frames" in why
    assert choose(list(cands.values()), 50, margin=1.1)[0].name == "big/kf2"
    assert choose(list(cands.values()), 80, margin=1.1)[0].name == "small"


def test_a_key_frame_rung_is_estimated_from_its_model_and_the_flow_cost():
    from rtseg.selection.profiling import flow_ms, keyframe_estimate

    base = profile("big", 35.0)
    est = keyframe_estimate(base, 3, (64, 96), "big/kf3")
    assert est.kind == "estimate" and est.model == "big/kf3"
    assert 35.0 < est.e2e_fps < 3 * 35.0  # the flow every frame pays keeps it under three times
    assert flow_ms((64, 96)) > 0


def test_switching_between_rungs_of_one_model_changes_the_interval_not_the_model(tmp_path):
    """A model too slow for the target on every frame: the runner moves to its own every-4th-frame rung, so no
    second model is loaded, and from then on the model runs on every 4th frame; every frame still comes out."""
    from rtseg.temporal import KeyFrames, Temporal, TemporalSettings

    model = nearest_centre_onnx(tmp_path / "m.onnx")
    slot = make_slot(model, delay_s=0.02, name="tiny")
    every, fourth = (
        Candidate("tiny" + s, a, f, 5.0, slot.info, (64, 80), k) for s, a, f, k in (("", 0.6, 50.0, 1), ("/kf4", 0.59, 180.0, 4))
    )
    sink = Collect()
    pipeline = Pipeline(FileLikeSource(300), slot, [sink], temporal=Temporal(TemporalSettings(KeyFrames(1))))
    cfg = ControllerConfig(window_s=0.3, down_after_s=0.3, min_dwell_s=0.3, up_after_s=60)
    loads = []
    runner = AdaptiveRunner(
        pipeline, Controller([fourth, every], 1, target_fps=100, config=cfg), lambda c: loads.append(c) or slot, live=False, streams=1
    )
    pipeline.on_frame = runner.on_frame
    stats = pipeline.run(handle_signals=False)
    assert stats.frames_out == 300 and [r[0] for r in sink.records] == list(range(300))
    assert loads == [] and [(e["from"], e["to"]) for e in runner.switches] == [("tiny", "tiny/kf4")]
    assert pipeline.temporal.keyframes.interval == 4
    assert 0 < stats.frames_inferred < 300 - 150  # after the switch, about one frame in four ran the model
    assert set(runner.observed()) == {"tiny", "tiny/kf4"}


def test_box_and_both_task_models_are_ranked_by_what_they_measured():
    # --task det ranks by AP@0.5, --task segdet by the mean of mIoU and AP@0.5; a figure missing for one of
    # them leaves that model out of the ranking rather than failing the choice
    from rtseg.core.modelinfo import ModelInfo
    from rtseg.selection.ladder import accuracy_of

    def model(task, **metrics):
        return ModelInfo(task, path=None, task=task, input_size=(64, 96), entry={"metrics": {"camvid_val": metrics}})

    boxes = model("det", detection={"map50": 0.6})
    both = model("segdet", miou=0.5, detection={"map50": 0.3})
    seg = model("seg", miou=0.7)
    assert accuracy_of(boxes, "det") == 0.6 and accuracy_of(boxes, "seg") is None
    assert accuracy_of(both, "segdet") == pytest.approx(0.4)
    assert accuracy_of(both, "det") == 0.3 and accuracy_of(both, "seg") == 0.5
    assert accuracy_of(seg, "det") is None and accuracy_of(seg, "segdet") is None
    assert accuracy_of(model("segdet", miou=0.5), "segdet") is None  # no AP measured: not ranked, no TypeError
