"""The selector's start: one probe scaled by the shipped reference speeds on first use, the chosen model
probed before it is trusted, and a rerun of the same command starting where the last run settled."""

import json

import pytest

from rtseg.selection import start as pick, profiling
from rtseg.selection.reference import REFERENCE_FILE, ReferenceSpeeds, load_reference
from rtseg.selection.ladder import Candidate

torch = pytest.importorskip("torch")


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """The tiny zoo's two models, the bigger also at 48x64 (so three variants), and a reference file for them."""
    from helpers import make_tiny_zoo

    from rtseg.core.manifest import Manifest
    from rtseg.core.modelinfo import resolve_model

    engines = make_tiny_zoo(tmp_path / "engines")
    m = Manifest.load(engines / "manifest.json")
    m.models[1]["metrics"]["camvid_val@48x64"] = {"miou": 0.42}
    m.save()
    monkeypatch.setenv("RTSEG_CACHE_DIR", str(tmp_path / "cache"))
    infos = [resolve_model(e["name"], engines / "manifest.json") for e in m.models]
    small, big = sorted(infos, key=lambda i: i.entry["metrics"]["camvid_val"]["miou"])
    speeds = {
        small.name: (small.entry["sha256"], 400.0),
        big.name: (big.entry["sha256"], 100.0),
        f"{big.name}@48x64": (big.entry["sha256"], 200.0),
    }
    ref = ReferenceSpeeds("reference machine", "1x1", "2026-12-07", speeds)
    (engines / REFERENCE_FILE).write_text(json.dumps(ref.to_dict()))
    monkeypatch.setattr(profiling, "load_reference", lambda: load_reference(engines))
    return engines, small, big


def fake_estimates(monkeypatch, fps_of):
    """estimate_model replaced by one that records its calls and reports `fps_of(variant)` model-only FPS."""
    calls = []

    def estimate(info, backend, streams, threads, efficiency, size=None, budget_s=0.05, latency_scale=4.0):
        name = profiling.variant_name(info, size)
        calls.append(name)
        fps = fps_of(name)
        return profiling.Profile(
            name,
            profiling.model_checksum(info),
            fps,
            1e3 / fps,
            1.5e3 / fps,
            fps * efficiency,
            4e3 / fps,
            6e3 / fps,
            3,
            "now",
            "estimate",
            0.0,
        )

    monkeypatch.setattr(profiling, "estimate_model", estimate)
    return calls


def test_reference_file_reads_back_and_knows_only_the_files_it_measured(tmp_path):
    ref = ReferenceSpeeds("m", "2x1", "d", {"a": ("sha-a", 120.0), "b@48x64": ("sha-b", 0.0)})
    (tmp_path / REFERENCE_FILE).write_text(json.dumps(ref.to_dict()))
    back = load_reference(tmp_path)
    assert back == ref
    assert back.fps("a", "sha-a") == 120.0
    assert back.fps("a", "another file") is None and back.fps("b@48x64", "sha-b") is None and back.fps("c", "x") is None
    (tmp_path / REFERENCE_FILE).write_text("{not json")
    assert load_reference(tmp_path) is None  # only a start-up aid: unreadable means estimate every variant


def test_first_use_times_one_variant_and_scales_the_others_by_it(zoo, monkeypatch):
    engines, small, big = zoo
    # this machine is half as fast as the reference for every model
    calls = fake_estimates(monkeypatch, lambda name: {small.name: 200.0, big.name: 50.0, f"{big.name}@48x64": 100.0}[name])
    profiles = profiling.ensure_profiles([small, big], "onnxruntime", 1, 1, quick=True)
    assert calls == [f"{big.name}@48x64"]  # one probe: the variant of median reference speed
    assert profiles[f"{big.name}@48x64"].kind == "estimate"
    assert profiles[small.name].kind == profiles[big.name].kind == "scaled"
    assert profiles[small.name].model_fps == pytest.approx(200.0) and profiles[big.name].model_fps == pytest.approx(50.0)
    # end to end through the pipeline efficiency, as every estimate
    assert profiles[big.name].e2e_fps == pytest.approx(50.0 * profiling.PIPELINE_EFFICIENCY)
    # another backend: the reference (ONNX Runtime on the CPU) says nothing about it, every variant is timed
    calls.clear()
    profiling.ensure_profiles([small, big], "torch", 1, 1, quick=True)
    assert sorted(calls) == sorted([small.name, big.name, f"{big.name}@48x64"])


def test_the_chosen_model_is_probed_before_it_is_trusted(zoo, monkeypatch):
    engines, small, big = zoo
    # the reference says the big model is fast enough here; timed, it is not (a CPU on which it runs slower)
    real = {small.name: 200.0, big.name: 10.0, f"{big.name}@48x64": 100.0}
    calls = fake_estimates(monkeypatch, real.__getitem__)
    monkeypatch.setattr(pick, "models_for_task", lambda task, rank_by: ([small, big], "val"))
    sel = pick.select_for_rate(30, "seg", "onnxruntime", 1, 1)
    # the probe (48x64, 100 FPS here: reference ratio 0.5), then the scaled favourite (big at 50) probed: 10 FPS,
    # so the choice falls to the next most accurate that holds 30 x 1.1, the probe itself
    assert calls == [f"{big.name}@48x64", big.name]
    assert sel.choice.name == f"{big.name}@48x64"
    cache = profiling.ProfileCache(profiling.machine_key("onnxruntime", 1, 1))
    assert cache.get(big).kind == "estimate" and cache.get(big).model_fps == 10.0


def test_a_rerun_starts_where_the_last_run_of_the_same_command_settled(monkeypatch, tmp_path):
    monkeypatch.setenv("RTSEG_CACHE_DIR", str(tmp_path / "cache"))
    fast, mid, slow = Candidate("fast", 0.50, 100.0, 20.0), Candidate("mid", 0.60, 50.0, 40.0), Candidate("slow", 0.70, 25.0, 80.0)
    monkeypatch.setattr(pick, "models_for_task", lambda task, rank_by: ([], "val"))
    monkeypatch.setattr(pick, "ensure_profiles", lambda *a, **k: {})
    monkeypatch.setattr(pick, "build_candidates", lambda *a: [fast, mid, slow])
    first = pick.select_for_rate(20, "seg", "onnxruntime", 1, 1)
    assert first.choice.name == "slow" and "where the last run" not in first.why
    # that run found "slow" too slow and settled on "mid"
    profiling.remember_settled("onnxruntime", 1, 1, first.settle_key, "mid", 300, 10.0, 20)
    again = pick.select_for_rate(20, "seg", "onnxruntime", 1, 1)
    assert again.choice.name == "mid" and again.ladder[again.index] == mid
    assert "where the last run of this command here settled (30.0 FPS on it" in again.why
    # another target, another layout or several sources are other commands: chosen afresh
    assert pick.select_for_rate(10, "seg", "onnxruntime", 1, 1).choice.name == "slow"
    assert pick.select_for_rate(20, "seg", "onnxruntime", 2, 1).choice.name == "slow"
    # a settled rung that is no longer a candidate (a model withdrawn) is ignored
    profiling.remember_settled("onnxruntime", 1, 1, first.settle_key, "gone", 300, 10.0, 20)
    assert pick.select_for_rate(20, "seg", "onnxruntime", 1, 1).choice.name == "slow"


def test_a_session_keeps_the_rung_it_ended_on_only_after_a_real_stretch(monkeypatch, tmp_path):
    from rtseg.api.session import Session

    monkeypatch.setenv("RTSEG_CACHE_DIR", str(tmp_path / "cache"))

    class Runner:
        controller = type("C", (), {"target": 20.0})()

        def __init__(self, last):
            self.last = last

        def settled(self):
            return self.last

    key = profiling.settle_key(20, "seg", "val", 1.1, None, True)
    session = Session(source=None, pipeline=None, streams=1, threads=1, settle_key=key)
    for too_short in (("mid", 5, 3.0), ("mid", 100, 1.0), None):
        session.runner = Runner(too_short)
        session._settle()
        assert profiling.last_settled("onnxruntime", 1, 1, key) is None
    session.runner = Runner(("mid", 100, 4.0))
    session._settle()
    assert profiling.last_settled("onnxruntime", 1, 1, key)["rung"] == "mid"
    # profiles written afterwards keep it (one file holds both)
    cache = profiling.ProfileCache(profiling.machine_key("onnxruntime", 1, 1))
    with cache.lock():
        cache.put(profiling.Profile("x", "sha", 1, 1, 1, 1, 1, 1, 1, "now"))
    assert profiling.last_settled("onnxruntime", 1, 1, key)["fps"] == 25.0
