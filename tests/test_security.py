"""Names are not paths, manifests are checked before they are trusted, model files are the ones their
manifest describes, and no camera password leaves the process in any text."""

from __future__ import annotations

import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers import run_cli

onnx = pytest.importorskip("onnx")

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from rtseg.core.errors import RtsegError  # noqa: E402
from rtseg.core.manifest import Manifest  # noqa: E402
from rtseg.core.names import bad_name_reason, check_model_name  # noqa: E402
from rtseg.core.redact import redact  # noqa: E402
from rtseg.training.importer import ImportRequest, import_model  # noqa: E402
from test_import import logits_onnx  # noqa: E402


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes: what must not change."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- names -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "../evil",
        "../../x",
        "/abs/evil",
        "a/b",
        "..",
        ".hidden",
        "a..b",
        "<img src=x onerror=alert(1)>",
        "",
        " ",
        "x" * 200,
        "na\x00me",
        "café",
    ],
)
def test_a_name_that_could_act_as_a_path_or_markup_is_refused(name):
    assert bad_name_reason(name) is not None
    with pytest.raises(RtsegError, match="not a model name"):
        check_model_name(name)


@pytest.mark.parametrize("name", ["mnv2-050-lraspp-os32-240x320", "mnv2-050-lraspp+centernet-os32-240x320", "room_v2.1", "A"])
def test_ordinary_names_pass(name):
    assert check_model_name(name) == name


def test_import_writes_only_inside_the_user_models_folder(tmp_path):
    src = logits_onnx(tmp_path / "room.onnx", classes=3)
    home = tmp_path / "home" / "models"
    (tmp_path / "precious.onnx").write_bytes(b"precious")
    before = snapshot(tmp_path)
    for name in ("../../evil", str(tmp_path / "precious"), "<b>x</b>"):
        with pytest.raises(RtsegError, match="not a model name"):
            import_model(ImportRequest(src, name), home / "manifest.json")
    assert snapshot(tmp_path) == before


def test_import_does_not_replace_an_imported_model_without_force(tmp_path):
    src = logits_onnx(tmp_path / "room.onnx", classes=3)
    manifest = tmp_path / "home" / "manifest.json"
    import_model(ImportRequest(src, "room"), manifest)
    first = (tmp_path / "home" / "room.onnx").read_bytes()
    with pytest.raises(RtsegError, match="--force"):
        import_model(ImportRequest(logits_onnx(tmp_path / "other.onnx", classes=5), "room"), manifest)
    assert (tmp_path / "home" / "room.onnx").read_bytes() == first
    entry = import_model(ImportRequest(logits_onnx(tmp_path / "other.onnx", classes=5), "room", force=True), manifest)
    assert len(entry["classes"]) == 5


def test_more_classes_than_a_byte_holds_are_refused_at_import(tmp_path):
    src = logits_onnx(tmp_path / "big.onnx", classes=300, size=(8, 8))
    with pytest.raises(RtsegError, match="at most 255"):
        import_model(ImportRequest(src, "big"), tmp_path / "home" / "manifest.json")
    assert not (tmp_path / "home" / "big.onnx").exists()


def test_a_labels_file_that_is_not_utf8_is_one_line(tmp_path):
    src = logits_onnx(tmp_path / "room.onnx", classes=2)
    (tmp_path / "labels.txt").write_bytes(b"floor\n\xffwall\n")
    with pytest.raises(RtsegError, match="not UTF-8"):
        import_model(ImportRequest(src, "room", labels=tmp_path / "labels.txt"), tmp_path / "home" / "manifest.json")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.lists(st.sampled_from(list("./\\~:$<>\"'`&|;* \tab0-_+%") + ["..", "/..", "\x00", "precious"]), min_size=1, max_size=8).map(
        "".join
    )
)
def test_hostile_import_names_change_nothing_outside_the_models_folder(tmp_path, name):
    src = tmp_path / "src" / "room.onnx"
    if not src.exists():
        src.parent.mkdir(exist_ok=True)
        logits_onnx(src, classes=2, size=(8, 8))
    home = tmp_path / "home" / "models"
    outside = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("home")}
    try:
        entry = import_model(ImportRequest(src, name, force=True), home / "manifest.json")
    except RtsegError:
        entry = None
    if entry is not None:  # accepted: a plain name, and its file is inside the folder
        assert bad_name_reason(entry["name"]) is None and (home / entry["file"]).resolve().parent == home.resolve()
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("home")} == outside


# -- manifests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [
        b"[1, 2, 3]",
        b'{"models": {"a": 1}}',
        b'{"models": [1]}',
        b'{"models": [{"name": "../x", "file": "x.onnx"}]}',
        b'{"models": [{"name": "x", "file": "../../etc/passwd"}]}',
        b"\xff\xfe random bytes",
        b'{"models": [{"name": "x"',
    ],
)
def test_a_damaged_manifest_is_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    with pytest.raises(RtsegError, match=re.escape(str(path))):
        Manifest.load(path)


def test_a_damaged_user_manifest_never_blocks_the_shipped_models(tmp_path, clip):
    home = tmp_path / "home" / "models"
    home.mkdir(parents=True)
    (home / "manifest.json").write_bytes(b"\x00\x01 not json")
    env = {**os.environ, "RTSEG_HOME": str(tmp_path / "home")}
    listed = run_cli("models", env=env)
    assert listed.returncode == 0 and "mnv2-100-dlv3p-os16-288x384-voc-int8" in listed.stdout
    assert "manifest.json" in listed.stderr and "Traceback" not in listed.stderr
    res = run_cli("run", clip, "--no-show", "--quiet", "--frames", "2", env=env)
    assert res.returncode == 0, res.stderr
    res = run_cli("run", clip, "--model", "mine", "--no-show", env=env)
    assert res.returncode == 1 and str(home / "manifest.json") in res.stderr and "Traceback" not in res.stderr
    res = run_cli("import", logits_onnx(tmp_path / "r.onnx", classes=2), "--name", "r", env=env)
    assert res.returncode == 1 and "damaged" in res.stderr
    assert (home / "manifest.json").read_bytes() == b"\x00\x01 not json"  # not "repaired" by overwriting


def test_a_model_file_that_no_longer_matches_its_manifest_is_refused(tmp_path, clip):
    env = {**os.environ, "RTSEG_HOME": str(tmp_path / "home"), "RTSEG_CACHE_DIR": str(tmp_path / "cache")}
    src = logits_onnx(tmp_path / "room.onnx", classes=3, size=(48, 64))
    assert run_cli("import", src, "--name", "room", env=env).returncode == 0
    ok = run_cli("run", clip, "--model", "room", "--no-show", "--quiet", "--frames", "2", env=env)
    assert ok.returncode == 0, ok.stderr  # and its digest is cached now
    model = tmp_path / "home" / "models" / "room.onnx"
    model.write_bytes(logits_onnx(tmp_path / "swap.onnx", classes=3, size=(48, 64)).read_bytes()[:-1] + b"\x01")
    res = run_cli("run", clip, "--model", "room", "--no-show", env=env)
    assert res.returncode == 1 and "does not match its manifest" in res.stderr and "Traceback" not in res.stderr


# -- secrets -----------------------------------------------------------------------------------------
SECRET = "S3cretPW"


@pytest.mark.parametrize(
    "text",
    [
        f"rtsp://admin:{SECRET}@10.0.0.7:554/live",
        f"x http://u:{SECRET}@h/a y",
        f"http://cam/snap?user=a&password={SECRET}",
        f"https://h/p?token={SECRET}&x=1",
        f"rtsp://admin:{SECRET}@h/a and rtsp://b:{SECRET}@h2/",
    ],
)
def test_redaction_removes_every_credential(text):
    assert SECRET not in redact(text)
    assert SECRET not in str(RtsegError(f"cannot open {text}"))


class _Refuser(BaseHTTPRequestHandler):
    """A 'camera' that answers every request with 404: an unreadable stream at a URL with a password."""

    def do_GET(self):  # noqa: N802
        self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_camera():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuser)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://admin:{SECRET}@127.0.0.1:{server.server_address[1]}/video.mjpg"
    server.shutdown()


def test_no_password_reaches_stdout_stderr_or_any_file(tiny_model, clip, tmp_path, refusing_camera):
    out = tmp_path / "out"
    out.mkdir()
    one = run_cli("run", refusing_camera, "--model", tiny_model, "--no-show", "--stats", tmp_path / "s.json", timeout=180)
    many = run_cli(
        "run",
        clip,
        refusing_camera,
        "--model",
        tiny_model,
        "--no-show",
        "--output-dir",
        out,
        "--json",
        "--stats",
        tmp_path / "many.json",
        timeout=180,
    )
    assert one.returncode != 0 and many.returncode != 0
    texts = [one.stdout, one.stderr, many.stdout, many.stderr]
    texts += [
        p.read_text(errors="replace")
        for p in [*out.rglob("*"), *tmp_path.glob("*.json")]
        if p.is_file() and p.suffix in (".json", ".jsonl", ".txt")
    ]
    assert all(SECRET not in t for t in texts), [t for t in texts if SECRET in t][0][:500]
    assert "admin:" not in "".join(texts)
    if (tmp_path / "many.json").exists():
        doc = json.loads((tmp_path / "many.json").read_text())
        assert any(s.get("error") for s in doc["sources"].values())  # the error is there, without the secret
