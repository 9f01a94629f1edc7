"""No argument vector ends in a traceback: random `rtseg run / eval / models / import` command lines (hypothesis),
each either working or refused in one line with a non-zero exit."""

import contextlib
import io
import os

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from helpers import write_clip  # noqa: E402

from rtseg.cli import main  # noqa: E402

VALUES = st.sampled_from(
    [
        "0",
        "-5",
        "1",
        "3",
        "1e9",
        "99999999999",
        "nan",
        "abc",
        "",
        "240x320",
        "0x0",
        "1x99999",
        "forever",
        "0.5",
        "-1",
        "[x]",
        "*.png",
        "/",
        "/nonexistent/f",
        "{tmp}/o.mp4",
        "{tmp}/o.png",
        "{tmp}",
        "{clip}",
        "{tmp}/m",
        "{tmp}/s.json",
    ]
)
RUN_OPTIONS = [
    "--model",
    "--input-size",
    "--frames",
    "--loop",
    "--streams",
    "--threads",
    "--queue-size",
    "--alpha",
    "--score-threshold",
    "--target-fps",
    "--max-latency",
    "--margin",
    "--reconnect",
    "--output",
    "--json",
    "--save-masks",
    "--stats",
    "--codec",
    "--h264-preset",
    "--camera",
    "--task",
    "--serve",
]
FLAGS = ["--no-show", "--quiet", "--legend", "--realtime", "--no-adapt"]


@st.composite
def argv(draw):
    command = draw(st.sampled_from(["run", "run", "run", "eval", "models", "import"]))
    args = [command]
    if command in ("run", "import"):
        args.append(draw(st.sampled_from(["{clip}", "{tmp}", "/nonexistent.mp4", "{tmp}/*.png", "", "x[1].png"])))
    if command == "eval":
        args += ["--data", draw(VALUES)]
    for _ in range(draw(st.integers(0, 5))):
        args.append(
            draw(
                st.sampled_from(RUN_OPTIONS if command == "run" else ["--model", "--split", "--input-size", "--task", "--labels", "--name"])
            )
        )
        args.append(draw(VALUES))
    args += draw(st.lists(st.sampled_from(FLAGS), max_size=2)) if command == "run" else []
    return args


@contextlib.contextmanager
def _inside(folder: str):
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    return {"tmp": str(tmp), "clip": str(write_clip(tmp / "clip.avi", 6))}


@settings(
    max_examples=int(os.environ.get("RTSEG_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(argv())
def test_no_argument_vector_prints_a_traceback(places, args):
    args = [a.format(**places) for a in args]
    if args[0] == "run":
        args += ["--frames", "4", "--reconnect", "0"]  # whatever starts, stops soon (the last value given wins)
    err = io.StringIO()
    # in the fuzz folder: a relative value ("abc", "0.5") given to --output or --save-masks is written there
    with _inside(places["tmp"]), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as e:  # argparse's own one-line refusal
            code = e.code
    assert code in (0, 1, 2, 3, 4), (args, code)
    if code:
        assert "Traceback" not in err.getvalue()
