"""Key frames with motion propagation, and smoothing: propagated maps follow the motion, a cut forces a key
frame, every frame still comes out in order, flicker is voted down."""

import json

import cv2
import numpy as np
import pytest

from helpers import NUM_CLASSES, class_frame, frame_lines, grey_for_class, run_cli

from rtseg.backends import load_backend
from rtseg.core.modelinfo import ModelInfo
from rtseg.data.camvid import CLASSES, PALETTE_RGB
from rtseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from rtseg.evaluation.sequence import run_sequence, temporal_inconsistency
from rtseg.runtime.postprocess import Postprocessor
from rtseg.runtime.preprocess import Preprocessor
from rtseg.runtime.slot import ModelSlot
from rtseg.temporal import KeyFrames, TemporalSettings
from rtseg.temporal.keyframes import shift_boxes

FRAME = (64, 80)  # (H, W) of the synthetic frames: the tiny model's own size, so no resampling blurs a block edge


class CountingBackend:
    """The nearest-centre model, counting its calls (propagated frames must not reach it)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.name, self.input_name = inner.name, inner.input_name

    def infer(self, x):
        self.calls += 1
        return self.inner.infer(x)

    def close(self):
        self.inner.close()


def slot_for(model) -> ModelSlot:
    backend = CountingBackend(load_backend("onnxruntime", str(model), threads=1))
    return ModelSlot(
        ModelInfo(name="tiny", path=model, input_size=(64, 80)),
        backend,
        Preprocessor((64, 80), IMAGENET_MEAN, IMAGENET_STD, pool_size=6),
        Postprocessor(PALETTE_RGB.tolist(), CLASSES),
    )


def block_world(seed: int, size=(160, 320), block: int = 16) -> np.ndarray:
    """A large picture of random class-grey blocks: texture the flow can follow, a class map that is known."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, NUM_CLASSES, (size[0] // block + 1, size[1] // block + 1))
    greys = np.array([grey_for_class(k) for k in range(NUM_CLASSES)], np.uint8)[cells]
    img = np.kron(greys, np.ones((block, block), np.uint8))[: size[0], : size[1]]
    return np.repeat(img[..., None], 3, axis=2)


def panning(world: np.ndarray, n: int, dx: int, dy: int = 0, y0: int = 20) -> list[np.ndarray]:
    """n frames of a camera panning over `world` by (dx, dy) pixels a frame."""
    h, w = FRAME
    return [np.ascontiguousarray(world[y0 + i * dy : y0 + i * dy + h, i * dx : i * dx + w]) for i in range(n)]


def agreement(a: np.ndarray, b: np.ndarray, margin: int = 8) -> float:
    """Share of equal pixels away from the borders (content entering the picture cannot be known)."""
    return float((a[margin:-margin, margin:-margin] == b[margin:-margin, margin:-margin]).mean())


def test_propagated_maps_follow_a_known_translation(tiny_model):
    frames = panning(block_world(0), 13, dx=2, dy=1)
    truth = run_sequence(slot_for(tiny_model), frames, TemporalSettings()).masks  # the model on every frame
    slot = slot_for(tiny_model)
    run = run_sequence(slot, frames, TemporalSettings(KeyFrames(4)))
    assert run.inferred == [i % 4 == 0 for i in range(13)]
    assert slot.backend.calls == 4  # propagated frames never reach the model
    for i, (got, want) in enumerate(zip(run.masks, truth)):
        if not run.inferred[i]:
            assert agreement(got, want) > 0.98, f"frame {i}"
    # the key frame's map carried without motion would be far off: the warp is what does the work
    stale = run.masks[0]
    assert agreement(stale, truth[3]) < 0.6


@pytest.mark.parametrize("anchor", ["key", "previous"])
def test_a_scene_cut_forces_a_key_frame(tiny_model, anchor):
    frames = panning(block_world(1), 5, dx=2) + panning(block_world(2), 5, dx=2)
    slot = slot_for(tiny_model)
    run = run_sequence(slot, frames, TemporalSettings(KeyFrames(8), anchor=anchor))
    assert run.inferred == [True, False, False, False, False, True, False, False, False, False]
    assert run.forced == 1
    truth = run_sequence(slot_for(tiny_model), frames, TemporalSettings()).masks
    assert agreement(run.masks[5], truth[5]) == 1.0  # the new scene's map, not the old one warped


def test_auto_key_frames_come_with_change_and_at_the_latest_every_auto_max(tiny_model):
    still = [block_world(3)[20:116, :128].copy() for _ in range(20)]
    run = run_sequence(slot_for(tiny_model), still, TemporalSettings(KeyFrames("auto")))
    assert run.inferred == [i % 8 == 0 for i in range(20)]  # a still scene: the cap alone


def test_every_frame_comes_out_in_order_with_key_frames_through_the_cli(tiny_model, clip, tmp_path):
    out, js = tmp_path / "o.avi", tmp_path / "o.jsonl"
    r = run_cli(
        "run",
        clip,
        "--model",
        tiny_model,
        *"--keyframe 3 --no-show --output".split(),
        out,
        "--json",
        js,
        *"--codec mp4v --streams 2".split(),
    )
    assert r.returncode == 0, r.stderr
    lines = frame_lines(js)
    assert [d["frame"] for d in lines] == list(range(40))
    inferred = [d["inferred"] for d in lines]
    # the clip's frames change grey every frame: 20 levels from one to the next passes for noise (propagated),
    # two frames' change does not (a cut: inferred), so the schedule is no longer every third frame here
    assert inferred[:2] == [True, False] and all(any(inferred[i : i + 3]) for i in range(38))
    assert all(("infer" in d["ms"]) == d["inferred"] for d in lines)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 40
    assert f"model ran on {sum(inferred)} of 40 frames, {40 - sum(inferred)} propagated" in r.stderr


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_a_bad_key_frame_interval_is_one_line_and_exit_2(tiny_model, clip, bad):
    r = run_cli("run", clip, "--model", tiny_model, "--keyframe", bad, "--no-show")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "--keyframe" in r.stderr and "Traceback" not in r.stderr


def test_smoothing_votes_down_flicker_on_a_still_scene(tiny_model):
    # a still picture whose middle sits on the boundary between two classes: every fourth frame, a flicker of
    # 6 grey levels (sensor noise, exposure) flips the model's class there for that one frame
    base = block_world(4)[20:84, :80].astype(np.int16)
    edge = (grey_for_class(2) + grey_for_class(3)) // 2
    base[20:50, 20:60] = edge
    frames = [np.clip(base + (3 if i % 4 else -3), 0, 255).astype(np.uint8) for i in range(24)]
    plain = run_sequence(slot_for(tiny_model), frames, TemporalSettings()).masks
    smooth = run_sequence(slot_for(tiny_model), frames, TemporalSettings(smooth=True)).masks
    before, after = temporal_inconsistency(frames, plain), temporal_inconsistency(frames, smooth)
    assert before > 0.05
    assert after < 0.5 * before


def test_smoothing_does_not_hold_back_a_moving_object(tiny_model):
    frames = panning(block_world(5), 12, dx=4)
    truth = run_sequence(slot_for(tiny_model), frames, TemporalSettings()).masks
    smooth = run_sequence(slot_for(tiny_model), frames, TemporalSettings(smooth=True)).masks
    assert min(agreement(s, t) for s, t in zip(smooth, truth)) > 0.93


def test_boxes_move_with_the_motion_inside_them():
    boxes = np.array([[[10, 10, 30, 20], [40, 5, 60, 25]]], np.float32)
    dx, dy = np.full((48, 64), -3.0, np.float32), np.full((48, 64), 2.0, np.float32)  # backward flow: moved +3, -2
    moved = shift_boxes(boxes, (dx, dy))
    assert np.allclose(moved - boxes, [[[3, -2, 3, -2], [3, -2, 3, -2]]])


def test_key_frame_settings_parse_like_the_cli():
    assert KeyFrames.parse("auto").interval == "auto" and KeyFrames.parse("4").interval == 4
    assert not TemporalSettings().active and TemporalSettings(smooth=True).active
    with pytest.raises(ValueError):
        KeyFrames.parse("0")


def test_eval_with_key_frames_scores_a_sequence_against_every_frame(tiny_model, tmp_path):
    """A labelled panning sequence: with the model on every 3rd frame the propagated frames keep the labels
    (the flow follows the pan), and the report gives the setting, the every-frame figure and the drop."""
    rng = np.random.default_rng(7)
    cells = rng.integers(0, NUM_CLASSES, (160 // 16 + 1, 320 // 16 + 1))
    world_ids = np.kron(cells, np.ones((16, 16), np.int64))[:160, :320].astype(np.uint8)
    world = np.repeat(np.array([grey_for_class(k) for k in range(NUM_CLASSES)], np.uint8)[world_ids][..., None], 3, 2)
    for split in ("val", "valannot"):
        (tmp_path / split).mkdir()
    h, w = FRAME
    for i in range(12):
        cv2.imwrite(str(tmp_path / "val" / f"seq_{i:03d}.png"), world[20 + i : 20 + i + h, 2 * i : 2 * i + w])
        cv2.imwrite(str(tmp_path / "valannot" / f"seq_{i:03d}.png"), world_ids[20 + i : 20 + i + h, 2 * i : 2 * i + w])
    out = tmp_path / "r.json"
    res = run_cli("eval", "--model", tiny_model, "--data", tmp_path, "--keyframe", "3", "--json", out, "--quiet")
    assert res.returncode == 0, res.stderr
    r = json.loads(out.read_text())
    assert r["keyframe"] == "3" and r["every_frame_miou"] == pytest.approx(1.0)
    assert r["drop"] < 3.0 and r["miou"] > 0.97  # content entering at the edges is all the propagation misses
    assert r["inferred_share"] == pytest.approx(12 / 33, abs=0.01)  # phases 0, 1, 2: 12 + 11 + 10 frames, 4+4+4 keys
    assert "drop" in res.stdout and "every frame" in res.stdout
    bad = run_cli("eval", "--model", tiny_model, "--data", tmp_path, "--keyframe", "3", "--stress")
    assert bad.returncode == 1 and "--keyframe" in bad.stderr and "Traceback" not in bad.stderr


def test_many_sources_each_keep_their_own_key_frames(tiny_model, clip, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    r = run_cli("run", clip, clip, "--model", tiny_model, "--keyframe", "4", "--output-dir", out, "--json", "--no-show", "--codec", "mp4v")
    assert r.returncode == 0, r.stderr
    flags = {p.name: [d["inferred"] for d in frame_lines(p)] for p in out.glob("*.jsonl")}
    assert len(flags) == 2 and all(len(f) == 40 and f[0] and not all(f) for f in flags.values())
    assert len({tuple(f) for f in flags.values()}) == 1  # the same clip, the same key frames: no shared state


def test_score_maps_are_carried_and_smoothed_as_scores():
    """A foreign model's (1, C, H, W) logits: propagation interpolates them, smoothing blends softmax scores."""
    from rtseg.temporal.keyframes import propagate
    from rtseg.temporal.motion import Motion
    from rtseg.temporal.smoothing import Smoother

    h, w = 32, 40
    logits = np.zeros((1, 3, h, w), np.float32)
    logits[0, 1, :, :20] = 5.0  # class 1 on the left, class 2 on the right
    logits[0, 2, :, 20:] = 5.0
    motion = Motion((h, w), "ultrafast")
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    moved = propagate({"logits": logits}, motion, (gx - 4, gy))  # content moved 4 px right
    assert moved["logits"].shape == logits.shape
    assert moved["logits"][0].argmax(0)[:, :24].max() == 1 and (moved["logits"][0].argmax(0)[:, 25:] == 2).all()

    smoother = Smoother(weight=0.3)
    still = np.zeros((h, w), np.uint8)
    first = smoother({"logits": logits}, None, None, 3)
    flipped = logits.copy()
    flipped[0, 1, :, 15:20], flipped[0, 2, :, 15:20] = 0.0, 5.0  # one frame says class 2 a little further left
    second = smoother({"logits": flipped}, (gx, gy), still, 3)
    assert (first["mask"][0][:, 15:20] == 1).all() and (second["mask"][0][:, 15:20] == 1).all()  # outvoted
    untrusted = np.full((h, w), 255, np.uint8)  # where the flow explains nothing, the current frame stands alone
    third = smoother({"logits": flipped}, (gx, gy), untrusted, 3)
    assert (third["mask"][0][:, 15:20] == 2).all()


def test_the_selector_chooses_the_interval_itself(clip):
    r = run_cli("run", clip, "--target-fps", "30", "--keyframe", "3", "--no-show")
    assert r.returncode == 1 and "--keyframe with --target-fps" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_live_selector_reads_capacity_from_the_frames_that_ran_the_model():
    """Propagated frames have no inference time: they must neither divide by zero nor pass for free capacity."""
    from types import SimpleNamespace

    from rtseg.selection.adaptive import AdaptiveRunner
    from rtseg.selection.ladder import Candidate, Controller

    slot = SimpleNamespace(name="a")
    ladder = [Candidate("a/kf3", 0.5, 300.0, 5.0), Candidate("a", 0.6, 100.0, 10.0)]
    runner = AdaptiveRunner(SimpleNamespace(slot=slot), Controller(ladder, 1, target_fps=30), lambda c: slot, live=True, streams=1)

    def frame(i, inferred, ms=10.0):
        return SimpleNamespace(slot=slot, inferred=inferred, index=i, ms={"infer": ms} if inferred else {})

    runner.on_frame(frame(0, False))  # a propagated frame first (as after a switch): no rate yet, no error
    assert runner.rate() is None
    for i, inferred in enumerate([True, False, False], 1):
        runner.on_frame(frame(i, inferred))
    assert runner.rate() == pytest.approx(1000 / 10 / (1 / 4))  # one frame in four ran the model, for 10 ms


def test_groups_of_sources_and_box_models_get_no_key_frame_rungs(monkeypatch, tiny_model, tmp_path):
    from rtseg.selection import start as pick
    from rtseg.selection.ladder import Candidate

    cands = [Candidate("a", 0.40, 100.0, 10.0), Candidate("b", 0.48, 40.0, 20.0), Candidate("b/kf3", 0.47, 110.0, 9.0, keyframe=3)]
    monkeypatch.setattr(pick, "models_for_task", lambda task, rank_by: ([], "val"))
    monkeypatch.setattr(pick, "ensure_profiles", lambda *a, **k: {})
    monkeypatch.setattr(pick, "build_candidates", lambda *a: list(cands))
    assert pick.select_for_rate(60, "seg", "onnxruntime", 1, 1).choice.name == "b/kf3"
    assert pick.select_for_rate(60, "seg", "onnxruntime", 1, 1, keyframes=False).choice.name == "a"
    r = run_cli("eval", "--model", "mnv2-050-centernet-os16-240x320-voc", "--data", tmp_path, "--keyframe", "2")
    assert r.returncode == 1 and "box-only" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_options_that_only_a_video_can_use_are_refused_on_frames(tiny_model):
    import rtseg
    from rtseg.core.errors import RtsegError

    with rtseg.Segmenter(tiny_model, backend="onnxruntime", threads=1) as seg:
        with pytest.raises(RtsegError, match="keyframe"):
            seg([class_frame(1), class_frame(2)], keyframe=3)
    with pytest.raises(ValueError):
        KeyFrames.parse(2.5)
