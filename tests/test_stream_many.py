"""`rtseg.stream_many`: several sources through one model from Python, as (label, Result) pairs."""

import threading

import numpy as np
import pytest

import rtseg
from rtseg.core.errors import RtsegError

from test_multi_source import uniform_clip


def test_every_frame_of_every_source_comes_once_in_order_under_its_label(tiny_model, tmp_path):
    a, b = uniform_clip(tmp_path / "a.avi", 2, 12), uniform_clip(tmp_path / "b.avi", 5, 20)
    got: dict[str, list] = {}
    with rtseg.stream_many([a, b], model=tiny_model, backend="onnxruntime") as results:
        assert results.labels == ["a", "b"]
        for label, res in results:
            got.setdefault(label, []).append((res.index, int(np.bincount(res.mask.ravel()).argmax())))
    assert got["a"] == [(i, 2) for i in range(12)] and got["b"] == [(i, 5) for i in range(20)]
    assert {k: s.frames_out for k, s in results.stats.items()} == {"a": 12, "b": 20}


def test_leaving_the_loop_early_stops_every_source(tiny_model, tmp_path):
    clips = [uniform_clip(tmp_path / f"c{k}.avi", k, 400) for k in range(2)]
    before = threading.active_count()
    results = rtseg.stream_many(clips, model=tiny_model, backend="onnxruntime")
    for n, _ in enumerate(results):
        if n == 5:
            break
    results.close()
    assert not results.group.running() and threading.active_count() <= before + 1
    assert all(s is None or s.frames_out < 400 for s in results.stats.values())


def test_a_source_list_names_the_results_and_a_bad_source_is_refused(tiny_model, tmp_path):
    uniform_clip(tmp_path / "x.avi", 3, 4)
    (tmp_path / "cams.txt").write_text("gate = x.avi\n")
    with rtseg.stream_many(tmp_path / "cams.txt", model=tiny_model, backend="onnxruntime") as results:
        assert {label for label, _ in results} == {"gate"}
    with pytest.raises(RtsegError, match="nope.avi"):
        rtseg.stream_many([tmp_path / "x.avi", tmp_path / "nope.avi"], model=tiny_model)
