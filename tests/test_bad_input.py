"""Every bad input: one line naming the problem, non-zero exit, no traceback."""

import os

import pytest

from helpers import count_frames, frame_lines, run_cli, write_clip

from rtseg.data.camvid import CLASSES


def assert_one_line_error(res, *words):
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("rtseg: error:"), lines[0]
    for w in words:
        assert w in lines[0], lines[0]


def test_missing_file(tiny_model, tmp_path):
    assert_one_line_error(run_cli("run", tmp_path / "nope.mp4", "--model", tiny_model, "--no-show"), "no such file")


def test_not_a_video(tiny_model, tmp_path):
    f = tmp_path / "notes.mp4"
    f.write_text("this is text, not a video\n" * 100)
    assert_one_line_error(run_cli("run", f, "--model", tiny_model, "--no-show"), "notes.mp4")


def test_empty_file(tiny_model, tmp_path):
    f = tmp_path / "empty.avi"
    f.write_bytes(b"")
    assert_one_line_error(run_cli("run", f, "--model", tiny_model, "--no-show"), "empty.avi")


def test_truncated_video_yields_every_decodable_frame(tiny_model, tmp_path):
    full = write_clip(tmp_path / "full.avi", 60)
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    decodable = count_frames(cut)
    assert 0 < decodable < 60
    js = tmp_path / "f.jsonl"
    res = run_cli("run", cut, "--model", tiny_model, "--no-show", "--json", js)
    assert res.returncode == 3, res.stderr  # every decodable frame processed, and the early end said (issue 17)
    assert len(frame_lines(js)) == decodable


def test_truncated_mp4_without_index_is_reported(tiny_model, tmp_path):
    import cv2
    import numpy as np

    f = tmp_path / "v.mp4"
    w = cv2.VideoWriter(str(f), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for _ in range(30):
        w.write(np.zeros((48, 64, 3), np.uint8))
    w.release()
    f.write_bytes(f.read_bytes()[:-400])  # the index (moov atom) sits at the end: nothing decodable
    decodable = count_frames(f)  # what this FFmpeg makes of it, read on its own
    js = tmp_path / "f.jsonl"
    res = run_cli("run", f, "--model", tiny_model, "--no-show", "--json", js)
    if decodable == 0:
        assert_one_line_error(res, "v.mp4")
        assert not js.exists() or js.read_text() == ""
    else:  # some FFmpeg builds recover the frames: then every decodable one must come out, in order, and right
        assert res.returncode in (0, 3) and "Traceback" not in res.stderr, res.stderr  # 3: ended early, and said
        lines = frame_lines(js)
        assert [d["frame"] for d in lines] == list(range(decodable))
        assert all(d["class_share"][CLASSES[0]] == 1.0 for d in lines)  # black frames: the darkest class


def test_camera_that_does_not_open(tiny_model):
    assert_one_line_error(run_cli("run", "--camera", "97", "--model", tiny_model, "--no-show"), "camera 97")


def test_unreachable_stream(tiny_model):
    res = run_cli("run", "rtsp://127.0.0.1:9/live", "--model", tiny_model, "--no-show", timeout=60)
    assert_one_line_error(res, "rtsp://127.0.0.1:9/live")


def test_corrupt_onnx(clip, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(os.urandom(5000))
    assert_one_line_error(run_cli("run", clip, "--model", bad, "--no-show"), "bad.onnx")


def test_missing_onnx(clip, tmp_path):
    assert_one_line_error(run_cli("run", clip, "--model", tmp_path / "gone.onnx", "--no-show"), "gone.onnx")


def test_unknown_model_name(clip):
    assert_one_line_error(run_cli("run", clip, "--model", "mnv2-does-not-exist", "--no-show"), "unknown model 'mnv2-does-not-exist'")


def test_output_folder_missing(tiny_model, clip, tmp_path):
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--output", tmp_path / "no" / "such" / "out.mp4")
    assert_one_line_error(res, "does not exist")


def test_output_is_a_folder(tiny_model, clip, tmp_path):
    (tmp_path / "x.mp4").mkdir()
    assert_one_line_error(run_cli("run", clip, "--model", tiny_model, "--no-show", "--output", tmp_path / "x.mp4"), "folder")


def test_output_unsupported_type(tiny_model, clip, tmp_path):
    assert_one_line_error(run_cli("run", clip, "--model", tiny_model, "--no-show", "--output", tmp_path / "o.xyz"), ".xyz")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_not_writable(tiny_model, clip, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert_one_line_error(run_cli("run", clip, "--model", tiny_model, "--no-show", "--output", ro / "o.mp4"), "not writable")


def test_masks_path_is_a_file(tiny_model, clip, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert_one_line_error(run_cli("run", clip, "--model", tiny_model, "--no-show", "--save-masks", f), "mask")


def test_neither_source_nor_camera(tiny_model):
    assert_one_line_error(run_cli("run", "--model", tiny_model, "--no-show"), "SOURCE")


def test_input_size_the_model_does_not_accept(tiny_model, clip):
    res = run_cli("run", clip, "--model", tiny_model, "--no-show", "--input-size", "128x160")
    assert_one_line_error(res, "only accepts 64x80")


def test_model_that_is_not_an_image_model(clip, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "vector.onnx"))
    assert_one_line_error(run_cli("run", clip, "--model", tmp_path / "vector.onnx", "--no-show"), "not an image batch")
