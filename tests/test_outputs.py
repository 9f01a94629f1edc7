"""The output contract: JSON lines that match their schema, masks whose ids are named, files that never
overwrite each other or an input, browser-playable video, and a summary that says where everything went."""

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import class_frame, count_frames, frame_lines, run_cli

from rtseg.runtime.postprocess import Detection
from rtseg.runtime.schema import SCHEMA_PATH, frame_record
from rtseg.runtime.sources import unique_labels

jsonschema = pytest.importorskip("jsonschema")
SCHEMA = json.loads(SCHEMA_PATH.read_text())


def validate_lines(path: Path) -> list[dict]:
    every = [json.loads(line) for line in path.read_text().splitlines()]
    for line in every:  # the header line too
        jsonschema.validate(line, SCHEMA)
    header = every[0]["header"]
    assert header["schema_version"] == 2 and len(header["palette_rgb"]) == len(header["classes"])
    return frame_lines(path)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_json_lines_of_a_video_match_the_schema(tiny_model, clip, tmp_path):
    js = tmp_path / "f.jsonl"
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--json", js)
    assert res.returncode == 0, res.stderr
    lines = validate_lines(js)
    assert [d["frame"] for d in lines] == list(range(40))
    assert lines[1]["time"] == pytest.approx(1 / 25, abs=1e-3) and "source_file" not in lines[0]
    assert f"wrote JSON lines: {js} (40 frames" in res.stderr


def test_box_records_match_the_schema():
    line = frame_record(
        3,
        0.5,
        "m",
        {"infer": 1.0},
        ("Sky", "Car"),
        None,
        ("Car", "Pedestrian"),
        [Detection((1.0, 2.0, 30.5, 40.25), 0.9, 1), Detection((0, 0, 5, 5), 0.4, 7)],
    )
    jsonschema.validate(line, SCHEMA)
    assert line["boxes"][0] == {"box": [1.0, 2.0, 30.5, 40.2], "score": 0.9, "class": "Pedestrian"}
    assert line["boxes"][1]["class"] == "7"  # an id the model does not name stays readable, as text
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**line, "extra": 1}, SCHEMA)  # the schema is closed: it can fail


def test_image_runs_name_their_files_and_repeated_stems_stay_apart(tiny_model, tmp_path):
    for folder, k in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "x.png"), class_frame(k))
    cv2.imwrite(str(tmp_path / "a" / "x.jpg"), class_frame(3))
    js, masks, out = tmp_path / "f.jsonl", tmp_path / "masks", tmp_path / "out" / "o.png"
    out.parent.mkdir()
    res = run_cli("run", f"{tmp_path}/*/x.*", "--model", tiny_model, "--no-show", "--json", js, "--save-masks", masks, "--output", out)
    assert res.returncode == 0, res.stderr
    lines = validate_lines(js)
    assert sorted(Path(d["source_file"]).relative_to(tmp_path).as_posix() for d in lines) == ["a/x.jpg", "a/x.png", "b/x.png"]
    assert all(d["time"] is None for d in lines)  # still images have no stream time
    pngs = sorted(p.name for p in masks.glob("*.png"))
    assert len(pngs) == 3 and len(list(out.parent.iterdir())) == 3
    by_file = {Path(d["source_file"]).relative_to(tmp_path).as_posix(): d for d in lines}
    # each mask holds the class of its own image
    for rel, k in (("a/x.png", 1), ("b/x.png", 2), ("a/x.jpg", 3)):
        assert max(by_file[rel]["class_share"].values()) == pytest.approx(1.0)
    assert {int(cv2.imread(str(masks / p), cv2.IMREAD_UNCHANGED)[0, 0]) for p in pngs} == {1, 2, 3}


def test_unique_labels():
    paths = [Path(p) for p in ("d/a.png", "d/a.jpg", "e/a.png", "d/b.png", "f/c.png")]
    labels = unique_labels(paths)
    assert len(set(labels)) == len(labels)
    assert labels[3:] == ["b", "c"]  # names that do not repeat stay plain
    assert unique_labels([Path("a.png"), Path("a.png")]) == ["a_png_0", "a_png_1"]
    tricky = unique_labels([Path("a.png"), Path("a.png"), Path("a_png_0.png")])
    assert len(set(tricky)) == 3


def test_masks_come_with_their_class_names(tiny_model, clip, tmp_path):
    masks = tmp_path / "m"
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--save-masks", masks, "--frames", "3")
    assert res.returncode == 0, res.stderr
    doc = json.loads((masks / "classes.json").read_text())
    assert [c["id"] for c in doc["classes"]] == list(range(11))
    assert doc["classes"][3]["name"] == "Road" and len(doc["classes"][3]["rgb"]) == 3
    assert "wrote class-id masks: 3 PNGs" in res.stderr


@pytest.mark.parametrize("option", ["--output", "--json"])
def test_an_output_never_replaces_the_input_video(tiny_model, clip, tmp_path, option):
    video = tmp_path / "in.avi"
    video.write_bytes(clip.read_bytes())
    before = digest(video)
    res = run_cli("run", video, "--model", tiny_model, "--no-show", option, video)
    assert res.returncode == 1 and "would be overwritten" in res.stderr and "Traceback" not in res.stderr
    assert digest(video) == before


def test_overlay_images_never_replace_input_images(tiny_model, tmp_path):
    for name in ("a.png", "overlay_a.png"):  # e.g. an earlier run's output, now among the inputs
        cv2.imwrite(str(tmp_path / name), class_frame(1))
    before = digest(tmp_path / "overlay_a.png")
    res = run_cli("run", tmp_path, "--model", tiny_model, "--no-show", "--output", tmp_path / "overlay.png")
    assert res.returncode == 1 and "over input" in res.stderr
    assert digest(tmp_path / "overlay_a.png") == before


def test_masks_never_replace_input_images(tiny_model, tmp_path):
    cv2.imwrite(str(tmp_path / "0.png"), class_frame(1))
    before = digest(tmp_path / "0.png")
    res = run_cli("run", tmp_path, "--model", tiny_model, "--no-show", "--save-masks", tmp_path)
    assert res.returncode == 1 and "overwrite them" in res.stderr
    assert digest(tmp_path / "0.png") == before


def test_mp4_is_h264_when_pyav_is_installed(tiny_model, clip, tmp_path):
    av = pytest.importorskip("av")
    out = tmp_path / "o.mp4"
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--output", out)
    assert res.returncode == 0, res.stderr
    assert "H.264 via PyAV" in res.stderr and str(out) in res.stderr
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.decode(video=0)) == 40
    old = tmp_path / "old.mp4"
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--output", old, "--codec", "mp4v")
    # MPEG-4 Part 2 as OpenCV writes it, by the same FFmpeg encoder through PyAV (fed I420, fragmented)
    assert res.returncode == 0 and "MPEG-4 Part 2 (mp4v) via PyAV" in res.stderr and count_frames(old) == 40
    with av.open(str(old)) as c:
        assert c.streams.video[0].codec_context.name == "mpeg4" and c.streams.video[0].codec_tag == "mp4v"


def test_h264_preset_reaches_x264(tiny_model, clip, tmp_path):
    pytest.importorskip("av")
    from rtseg.core.errors import RtsegError
    from rtseg.runtime.sinks import H264VideoSink

    # x264 writes its settings into the stream: ultrafast codes without CABAC, superfast with it
    runs = {"default": [], "superfast": ["--h264-preset", "superfast"]}
    for name, extra in runs.items():
        out = tmp_path / f"{name}.mp4"
        res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--output", out, "--codec", "h264", *extra)
        assert res.returncode == 0, res.stderr
        preset = extra[-1] if extra else "ultrafast"
        assert f"H.264 via PyAV, x264 {preset}" in res.stderr and count_frames(out) == 40
        assert (b"cabac=0" if preset == "ultrafast" else b"cabac=1") in out.read_bytes()
        if preset == "ultrafast":  # the profile every browser and phone decodes
            import av

            with av.open(str(out)) as c:
                assert c.streams.video[0].codec_context.profile == "Constrained Baseline"
    with pytest.raises(RtsegError, match="unknown H.264 preset"):
        H264VideoSink(tmp_path / "x.mp4", 10, (64, 48), preset="placebo-typo")
    assert not (tmp_path / "x.mp4").exists()
    from rtseg.runtime.outputs import SinkRequest

    with pytest.raises(RtsegError, match="unknown H.264 preset"):  # also where mp4v would be written
        SinkRequest(output=str(tmp_path / "y.mp4"), codec="mp4v", h264_preset="ultrafats")


@pytest.mark.parametrize("codec,fps", [("h264", 10), ("mp4v", 10), ("mp4v", 120000 / 1001)])
def test_pyav_frames_keep_their_colours(tmp_path, codec, fps):
    av = pytest.importorskip("av")
    from types import SimpleNamespace

    from rtseg.data.camvid import PALETTE_RGB
    from rtseg.runtime.sinks import H264VideoSink, Mpeg4VideoSink

    # flat blocks of every class colour (odd frame size: the sink trims it to even); 119.88 FPS: a time base
    # MPEG-4 does not take as it is
    frame = np.zeros((121, 161, 3), np.uint8)
    for i, rgb in enumerate(PALETTE_RGB):
        frame[(i // 4) * 40 : (i // 4) * 40 + 40, (i % 4) * 40 : (i % 4) * 40 + 40] = rgb[::-1]
    sink = (H264VideoSink if codec == "h264" else Mpeg4VideoSink)(tmp_path / "c.mp4", fps, (161, 121))
    for _ in range(5):
        sink.write(SimpleNamespace(overlay=frame))
    sink.close()
    with av.open(str(tmp_path / "c.mp4")) as c:
        decoded = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(decoded) == 5 and decoded[-1].shape == (120, 160, 3)
    for i, rgb in enumerate(PALETTE_RGB):  # the middle of each block, away from chroma edges
        y, x = (i // 4) * 40 + 20, (i % 4) * 40 + 20
        assert np.abs(decoded[-1][y - 5 : y + 5, x - 5 : x + 5].astype(int) - rgb[::-1]).max() <= 6, i


def test_legend_changes_the_overlay_corner_only(tiny_model, tmp_path):
    cv2.imwrite(str(tmp_path / "in.png"), class_frame(2, (240, 320)))
    for name, extra in (("plain.png", []), ("legend.png", ["--legend"])):
        res = run_cli("run", tmp_path / "in.png", "--model", tiny_model, "--no-show", "--output", tmp_path / name, *extra)
        assert res.returncode == 0, res.stderr
    plain, legend = cv2.imread(str(tmp_path / "plain.png")), cv2.imread(str(tmp_path / "legend.png"))
    assert (plain[:, :150] == legend[:, :150]).all() and (plain[:, -60:] != legend[:, -60:]).any()


def test_models_name_prints_ids_names_and_colours():
    res = run_cli("models", "mnv2-050-lraspp-os32-240x320-voc-kd")
    assert res.returncode == 0, res.stderr
    assert "  3  Road" in res.stdout and "#" in res.stdout
    bad = run_cli("models", "no-such-model")
    assert bad.returncode == 1 and "unknown model" in bad.stderr


def test_overwrite_replaces_the_input_video_only_after_reading_all_of_it(tiny_model, clip, tmp_path):
    video = tmp_path / "in.avi"
    video.write_bytes(clip.read_bytes())
    before = digest(video)
    res = run_cli("run", video, "--model", tiny_model, "--no-show", "--overwrite", "--output", video)
    assert res.returncode == 0, res.stderr
    assert digest(video) != before and count_frames(video) == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.avi"]  # no staging file left behind
    assert f"wrote overlay video: {video}" in res.stderr


def test_overwrite_keeps_an_input_that_was_not_read_to_its_end(tiny_model, clip, tmp_path):
    video = tmp_path / "in.avi"
    data = clip.read_bytes()
    video.write_bytes(data[: int(len(data) * 0.6)])  # ends before the frames its header announces
    before = digest(video)
    res = run_cli("run", video, "--model", tiny_model, "--no-show", "--overwrite", "--output", video)
    assert res.returncode == 3, res.stderr
    assert digest(video) == before
    partial = tmp_path / "in.partial.avi"
    assert partial.exists() and 0 < count_frames(partial) < 40 and "is kept" in res.stderr
    assert "the run did not read all of it" in res.stderr  # why the input was kept, said
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_overwrite_with_frames_is_refused(tiny_model, clip, tmp_path):
    video = tmp_path / "in.avi"
    video.write_bytes(clip.read_bytes())
    before = digest(video)
    res = run_cli("run", video, "--model", tiny_model, "--no-show", "--overwrite", "--frames", "5", "--output", video)
    assert res.returncode == 1 and "part of it" in res.stderr and digest(video) == before


def test_overwrite_lets_each_mask_replace_its_own_image(tiny_model, tmp_path):
    for k in range(3):
        cv2.imwrite(str(tmp_path / f"{k}.png"), class_frame(k + 1))
    res = run_cli("run", tmp_path, "--model", tiny_model, "--no-show", "--overwrite", "--save-masks", tmp_path)
    assert res.returncode == 0, res.stderr
    for k in range(3):
        mask = cv2.imread(str(tmp_path / f"{k}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.ndim == 2 and (mask == k + 1).mean() > 0.9  # the class id, where the image was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.png", "1.png", "2.png", "classes.json"]


def test_overwrite_refuses_a_mask_that_would_land_on_another_input(tiny_model, tmp_path):
    # a.png and a.jpg share a stem, so their labels widen to a_png and a_jpg: a.png's mask a_png.png is then
    # another input's name, which may not have been read yet when the mask is written
    for name in ("a.png", "a.jpg", "a_png.png", "a_png.jpg"):
        cv2.imwrite(str(tmp_path / name), class_frame(1))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    res = run_cli("run", tmp_path, "--model", tiny_model, "--no-show", "--overwrite", "--save-masks", tmp_path)
    assert res.returncode == 1 and "would overwrite input a_png.png" in res.stderr.strip().splitlines()[-1]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # refused before any file was touched


@pytest.mark.parametrize("option", ["--output", "--json", "--save-masks", "--stats"])
def test_an_empty_output_path_is_refused_not_ignored(option, tiny_model, clip):
    # `--output "$OUT"` with OUT unset: the run must not go ahead writing nothing and exit 0
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", option, "")
    assert res.returncode == 2 and "needs a path, got an empty one" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_an_output_that_cannot_open_closes_and_removes_those_opened_before_it(tiny_model, clip, tmp_path):
    import socket

    # the live view opens after the video and the JSON lines; its port is taken, so the run fails before any
    # frame: the files opened first are closed and removed, not left empty
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = run_cli(
            "run",
            clip,
            "--model",
            tiny_model,
            "--no-show",
            "--output",
            tmp_path / "out.mp4",
            "--json",
            tmp_path / "out.jsonl",
            "--serve",
            f"127.0.0.1:{port}",
        )
    assert res.returncode == 1 and "cannot listen there" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_output_whose_close_fails_does_not_replace_the_old_file(tmp_path):
    # a disk that fills while a video's trailer is written: the file that was there stays as it was, and the
    # new one is kept aside as .partial, never renamed over it half-made
    from rtseg.runtime.outputs import StagedOutput
    from rtseg.runtime.sinks import Sink

    final, staging = tmp_path / "out.mp4", tmp_path / ".out.rtseg-1.mp4"
    final.write_bytes(b"the old video")

    class FailsAtClose(Sink):
        def write(self, rec) -> None:
            staging.write_bytes(b"frames of the new one")

        def close(self) -> None:
            raise OSError(28, "No space left on device")

    out = StagedOutput(FailsAtClose(), staging, final)
    out.write(None)
    with pytest.raises(OSError):
        out.close()
    assert final.read_bytes() == b"the old video"
    assert (tmp_path / "out.partial.mp4").read_bytes() == b"frames of the new one" and not staging.exists()
