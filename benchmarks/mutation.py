"""Mutation testing: how many plausible bugs the tests catch in the modules the rest of rtseg leans on.

For each target (metrics, the output plan and sinks, run statistics, the selector, rtseg/core) this makes
mutants, each ONE small change to one source file (a comparison flipped, `+` for `-`, `and` for `or`, a
`not` dropped, a constant changed, a return value replaced by None, a call or a `raise` deleted...), and runs
that target's own tests against it: a mutant the tests fail on is killed, one they pass on survived (a bug
they would not notice, unless the change does not alter behaviour: an equivalent mutant). The score is
(killed + timeouts) / mutants run.

Why a small runner of our own and not mutmut or cosmic-ray: mutmut 3.8 (tried: `pip install mutmut`) reads
its settings only from setup.cfg or pyproject.toml in the current folder (this project has neither, and this
benchmark must not add project configuration), writes a mutants/ copy into the working tree, mutates only
function bodies through trampolines activated by an environment variable (module constants and dataclass
defaults are left alone), and forks from a process that has imported the tests (torch is not fork-safe).
cosmic-ray mutates the files in place, in the checkout that other people are editing. Most of rtseg's tests
run `python -m rtseg` in a subprocess, so the mutant has to be what *any* Python process imports. Here:

- rtseg/ is copied once into a temporary folder (a snapshot: edits made meanwhile in the checkout do not
  leak into the run) and that copy is put first on PYTHONPATH and made the working folder, so pytest and
  every `python -m rtseg` it starts import the copy; the checkout's files are never written.
- a mutant is made on the module's AST (`ast`), the whole module written back with `ast.unparse` into the
  copy (comments are lost, behaviour is not: before any mutant, each target's tests are run on its files
  unparsed but unchanged and must pass), then restored. A canary (a module that raises on import) must fail
  the tests, proving that the copy is what runs.
- each target's tests are a fast selection (unit tests first, so `-x` stops at the first failure early)
  and, only for a mutant the fast selection lets through, a slower one (end-to-end runs): a survivor has
  passed both. `TARGETS` below says which test files exercise which module.
- mutants are sampled: at most --max-mutants per target, a seeded sample (--seed), so a run is repeatable.
  Numbers inside literal tables of three or more constants (palettes, normalisation statistics), the digits
  of `round()`, text (messages, f-strings, string building), docstrings and annotations are not mutated:
  changing them is not a logic bug.
- RTSEG_CACHE_DIR and RTSEG_HOME point into the temporary folder, so a mutant never writes into the user's
  profiles or imported models.

Run it as one process, e.g. (about 40 minutes with the defaults on 2 cores, one of them busy training):

    nice -n 19 python benchmarks/mutation.py --out benchmarks/results/mutation_cpu

and, to run some targets again (the others are kept from the existing --out .json):

    nice -n 19 python benchmarks/mutation.py --only stats --only selector --out benchmarks/results/mutation_cpu

After editing `VERDICTS`, `--report` writes the .md again from the .json without running anything.
`VERDICTS` holds the reviewed survivors (equivalent, or a real gap, with why), `FIXED` the survivors of an
earlier run that tests added since then kill; both are printed beside the mutants in the report.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import py_compile
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, header_markdown, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# the selector's tests that profile models or run the pipeline (seconds each): the slow selection
SELECTOR_SLOW = [
    "tests/test_selector.py::test_switching_inside_a_running_pipeline",
    "tests/test_selector.py::test_target_fps_selects_profiles_once_and_reports",
    "tests/test_selector.py::test_two_runs_profiling_at_once_measure_each_model_once",
    "tests/test_selector.py::test_a_profile_taken_beside_other_work_is_marked_busy_and_measured_again",
    "tests/test_selector.py::test_a_run_teaches_the_profile_its_real_speed",
    "tests/test_selector.py::test_target_fps_over_several_sources_picks_one_model_for_all",
    "tests/test_selector.py::test_switching_between_rungs_of_one_model_changes_the_interval_not_the_model",
]

# tests that fail the unmutated code at random would "kill" mutants at random: left out of every selection.
# The group-switch test in tests/test_selector.py failed once here under a niced run beside a training job
# (its output was not kept); its 60 s join bound is gone, and it passed 8 of 8 runs beside two busy loops.
FLAKY: list[str] = []

# which tests exercise which module: `fast` runs on every mutant (in this order, with -x), `deselect` is left
# out of it, `slow` runs only on what `fast` let through
TARGETS: dict[str, dict] = {
    "metrics": {
        "files": ["rtseg/evaluation/metrics.py"],
        "fast": ["tests/test_metrics.py"],
        "slow": ["tests/test_class_map.py", "tests/test_eval.py"],
    },
    "output_plan": {
        "files": ["rtseg/runtime/output_plan.py"],
        "fast": ["tests/test_output_plan.py", "tests/test_outputs.py"],
        "slow": ["tests/test_faults.py"],
    },
    "outputs": {
        "files": ["rtseg/runtime/outputs.py"],
        "fast": ["tests/test_outputs.py", "tests/test_output_plan.py"],
        "slow": ["tests/test_faults.py"],
    },
    "stats": {
        "files": ["rtseg/runtime/stats.py"],
        "fast": ["tests/test_stats.py", "tests/test_faults.py", "tests/test_pipeline.py"],
        "slow": [
            "tests/test_shutdown.py",
            "tests/test_reconnect.py::test_a_stream_that_dies_and_comes_back_is_reconnected",
            "tests/test_reconnect.py::test_reconnect_zero_ends_with_the_stream",
        ],
    },
    "selector": {
        "files": ["rtseg/selection/ladder.py"],
        "fast": ["tests/test_selector.py"],
        "deselect": SELECTOR_SLOW + FLAKY,
        "slow": SELECTOR_SLOW + ["tests/test_keyframes.py"],
    },
    "core": {
        "files": sorted(str(p.relative_to(ROOT)) for p in (ROOT / "rtseg" / "core").glob("*.py") if p.name != "__init__.py"),
        "fast": [
            "tests/test_security.py",
            "tests/test_selector.py",
            "tests/test_models.py::test_shipped_manifest_matches_its_files",
            "tests/test_models.py::test_parent_record_chains_ancestors_and_checks_the_file",
            "tests/test_cli.py::test_an_unknown_model_name_suggests_the_nearest_in_one_short_line",
            "tests/test_cli.py::test_models_lists_the_manifest",
            "tests/test_cli.py::test_models_puts_held_out_figures_first_and_says_which_split_and_speed",
        ],
        "deselect": SELECTOR_SLOW + FLAKY,
        "slow": ["tests/test_import.py", *SELECTOR_SLOW],
    },
}

# reviewed survivors, by mutant id: ("equivalent" | "gap" | "caught elsewhere", one line why)
VERDICTS: dict[str, tuple[str, str]] = {
    "rtseg/evaluation/metrics.py:28:28:Gt->GtE": (
        "equivalent",
        "where the union is 0, tp is 0 too: 0/0 gives NaN either way (the warning is silenced)",
    ),
    "rtseg/runtime/output_plan.py:137:83:and->or": (
        "gap, closed",
        "an empty path reached the planner as '.'; now every front refuses it first (the CLI's path_arg, SinkRequest for "
        "the API: tests/test_api.py::test_an_empty_output_path_is_refused_from_python_too), so the change is equivalent",
    ),
    "rtseg/runtime/output_plan.py:119:20:delete call": (
        "equivalent",
        "the handle whose flock failed holds no lock and is dropped as the error propagates (CPython closes it; a ResourceWarning at most)",
    ),
    "rtseg/runtime/output_plan.py:114:106:32->33": (
        "equivalent",
        "lock files named by 33 instead of 32 hex digits of the path's sha256: still one name per output",
    ),
    "rtseg/runtime/outputs.py:111:8:delete call": (
        "equivalent",
        "no sink that OutputFile wraps overrides Sink.attach (a no-op); only the live view does, and it is not a file output",
    ),
    "rtseg/runtime/outputs.py:188:8:return None": (
        "gap, closed",
        "message only: the warning would say 'None:' instead of why the input was kept; "
        "tests/test_outputs.py::test_overwrite_keeps_an_input_that_was_not_read_to_its_end now reads the words and kills it (applied to 60f6c0f)",
    ),
    "rtseg/runtime/outputs.py:45:12:delete raise": (
        "caught elsewhere",
        "tests/test_serve_security.py::test_the_command_line_passes_the_token_on checks this refusal; it is not in this target's selection",
    ),
    "rtseg/runtime/outputs.py:89:12:delete raise": (
        "gap, closed",
        "an image's mask could overwrite another input under --overwrite: a.png, a.jpg, a_png.png and a_png.jpg reach it "
        "(a.png's label widens to a_png); tests/test_outputs.py::test_overwrite_refuses_a_mask_that_would_land_on_another_input "
        "kills it (applied to b94b479)",
    ),
    "rtseg/runtime/outputs.py:232:12:delete call": (
        "gap, closed",
        "when a later output cannot open, those opened before are not closed: a new video file left behind "
        "empty, its lock held; tests/test_outputs.py::test_an_output_that_cannot_open_closes_and_removes_those_opened_before_it "
        "kills it (applied to b94b479)",
    ),
    "rtseg/runtime/outputs.py:128:26:True->False": (
        "gap, closed",
        "an output whose close fails (disk full at the trailer) would still be renamed over the old file; "
        "tests/test_outputs.py::test_an_output_whose_close_fails_does_not_replace_the_old_file kills it (applied to b94b479)",
    ),
    "rtseg/runtime/outputs.py:202:40:True->False": (
        "equivalent",
        "every file sink creates its file when it opens, so a run without frames always finds it to remove",
    ),
    # stats.py as of the rerun (3dbc7b8 + others' uncommitted edits: counts() and finish() moved in, lines shifted)
    "rtseg/runtime/stats.py:116:8:delete call": (
        "gap, closed",
        "the recent latency behind the live readings' p95 would stay empty; "
        "tests/test_stats.py::test_the_live_readings_carry_the_recent_latency kills it (applied to b94b479)",
    ),
    "rtseg/runtime/stats.py:40:41:1.0->2.0": (
        "gap, closed",
        "minor: RateMeter's default window (live FPS) 2 s instead of 1; "
        "tests/test_stats.py::test_the_live_rate_is_read_over_the_last_second_by_default kills it (applied to 60f6c0f)",
    ),
    "rtseg/runtime/stats.py:80:53:False->True": ("equivalent", "t_start becomes a constructor argument nobody passes: same behaviour"),
    "rtseg/runtime/stats.py:154:71:0.0->1.0": (
        "gap, closed",
        "minor: a run with no elapsed time would report 1.0 FPS instead of 0; tests/test_stats.py::test_the_summary_says_only_what_happened kills it (applied to 60f6c0f)",
    ),
    "rtseg/runtime/stats.py:191:39:1->0": (
        "gap, closed",
        "cosmetic: the summary would print a 'models:' line for a single-model run; "
        "tests/test_stats.py::test_the_summary_says_only_what_happened kills it (applied to 60f6c0f)",
    ),
    "rtseg/runtime/stats.py:190:63:Lt->LtE": (
        "gap, closed",
        "cosmetic: with key frames on, the summary would say 'infer times are key frames'' when every frame was inferred; "
        "tests/test_stats.py::test_the_summary_says_only_what_happened kills it (applied to 60f6c0f)",
    ),
    # (selection/selector.py was renamed selection/ladder.py after this run: the ids are the run's)
    "rtseg/selection/selector.py:52:8:return None": (
        "gap, closed",
        "box models would have no accuracy for --task det, so no candidate; "
        "tests/test_selector.py::test_box_and_both_task_models_are_ranked_by_what_they_measured kills it (applied to b94b479)",
    ),
    "rtseg/selection/selector.py:53:33:and->or": (
        "gap, closed",
        "ranking for segdet with a figure missing would raise TypeError (None + float); "
        "tests/test_selector.py::test_box_and_both_task_models_are_ranked_by_what_they_measured kills it (applied to b94b479)",
    ),
    "rtseg/selection/selector.py:185:36:1->0": (
        "equivalent",
        "the current rung is tried first, but _rung_below runs only when rate < target, so it never holds target x down_margin",
    ),
    "rtseg/core/hash_cache.py:44:55:True->False": (
        "gap, closed",
        "performance only: with the cache folder there, mkdir raises FileExistsError (an OSError, swallowed) "
        "and the digest is never kept; tests/test_hash_cache.py kills it (applied to b94b479)",
    ),
    "rtseg/core/machine.py:21:4:return None": (
        "gap, closed",
        "cosmetic: reports would say 'machine: None'; tests/test_stats.py::test_reports_name_the_machine kills it (applied to 60f6c0f)",
    ),
    "rtseg/core/machine.py:70:17:Sub->Add": (
        "gap, closed",
        "OthersLoad would count our own CPU time as other programs': a quiet machine's profile marked busy; "
        "tests/test_stats.py::test_another_programs_share_of_the_cpus_leaves_out_our_own_time kills it (applied to b94b479)",
    ),
    "rtseg/core/machine.py:68:16:Add->Sub": (
        "gap, closed",
        "only child processes' CPU time changes sign; "
        "tests/test_stats.py::test_another_programs_share_of_the_cpus_leaves_out_our_own_time kills it (applied to b94b479)",
    ),
}

# survivors of the first run (rtseg/ at FIXED_AT) that tests added since kill, by mutant id: (original, mutated,
# the test that fails on it), each checked by applying the mutant to that commit's file
FIXED_AT = "05361af"
FIXED: dict[str, tuple[str, str, str]] = {
    'rtseg/evaluation/metrics.py:16:12:delete raise': (
        'raise ValueError(f"target shape {target.shape} != prediction shape {pred.shape}")',
        'pass',
        'tests/test_metrics.py::test_maps_of_another_shape_are_refused_even_with_as_many_pixels',
    ),
    'rtseg/evaluation/metrics.py:19:41:Lt->LtE': (
        'p < self.num_classes',
        'p <= self.num_classes',
        'tests/test_metrics.py::test_a_prediction_outside_the_scored_classes_counts_nowhere',
    ),
    'rtseg/runtime/stats.py:54:8:return None': (
        'return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)',
        'return None',
        'tests/test_stats.py::test_the_frame_rate_is_read_over_the_last_window_only',
    ),
    'rtseg/runtime/stats.py:123:8:return None': (
        'return not self.interrupted and not self.source_lost and self.frames_in == 0',
        'return None',
        'tests/test_stats.py::test_a_run_that_decoded_no_frame_fails_unless_it_was_stopped',
    ),
    'rtseg/runtime/stats.py:163:8:delete call': (
        'lines.append(f"{\'end-to-end\':<12}{p[\'mean\']:>9.2f}{p[\'p50\']:>9.2f}{p[\'p95\']:>9.2f} (capture to sink)")',
        'pass',
        'tests/test_stats.py::test_a_files_latency_counts_its_decoding_and_a_live_frames_does_not',
    ),
    'rtseg/runtime/stats.py:47:14:and->or': (
        'self.times and t - self.times[0] > self.window_s',
        'self.times or t - self.times[0] > self.window_s',
        'tests/test_stats.py::test_the_frame_rate_is_read_over_the_last_window_only',
    ),
    'rtseg/runtime/stats.py:93:18:Add->Sub': (
        '(t_done - rec.t_captured) * 1e3 + (0.0 if live else rec.ms["capture"])',
        "(t_done - rec.t_captured) * 1000.0 - (0.0 if live else rec.ms['capture'])",
        'tests/test_stats.py::test_a_files_latency_counts_its_decoding_and_a_live_frames_does_not',
    ),
    'rtseg/runtime/stats.py:88:15:NotIn->In': (
        'name not in self.stage_ms',
        'name in self.stage_ms',
        'tests/test_stats.py::test_every_frame_counts_in_the_stage_timings_the_frames_per_model_and_the_rate',
    ),
    'rtseg/runtime/stats.py:54:34:1->0': ('1', '0', 'tests/test_stats.py::test_the_frame_rate_is_read_over_the_last_window_only'),
    'rtseg/runtime/stats.py:85:78:0->1': (
        '0',
        '1',
        'tests/test_stats.py::test_every_frame_counts_in_the_stage_timings_the_frames_per_model_and_the_rate',
    ),
    'rtseg/runtime/stats.py:93:46:1000.0->1001.0': (
        '1e3',
        '1001.0',
        'tests/test_stats.py::test_a_files_latency_counts_its_decoding_and_a_live_frames_does_not',
    ),
    'rtseg/runtime/stats.py:97:44:Div->Mult': (
        'rec.ms["capture"] / 1e3',
        "rec.ms['capture'] * 1000.0",
        'tests/test_stats.py::test_every_frame_counts_in_the_stage_timings_the_frames_per_model_and_the_rate',
    ),
    'rtseg/runtime/stats.py:47:44:0->1': ('0', '1', 'tests/test_stats.py::test_the_frame_rate_is_read_over_the_last_window_only'),
    'rtseg/runtime/stats.py:54:71:0->1': ('0', '1', 'tests/test_stats.py::test_the_frame_rate_is_read_over_the_last_window_only'),
}


# ---------------------------------------------------------------------------------------------- mutants

CMP_FLIP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
BIN_FLIP = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
}


@dataclass
class Mutant:
    file: str  # relative to the repository
    line: int
    col: int
    op: str  # what was changed, e.g. "Lt->LtE", "delete call", "return None"
    original: str  # the source text of the node, one line
    mutated: str  # what replaces it
    node: int  # index of the node in ast.walk order (how it is found again)
    status: str = ""  # killed, survived, timeout, error
    stage: str = ""  # fast or slow: the selection that decided it
    killer: str = ""  # the first failing test
    seconds: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}:{self.col}:{self.op}"


def _one_line(text: str | None, limit: int = 140) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes not to mutate: docstrings, annotations, f-strings (text), literal tables of constants."""
    skip: set[int] = set()

    def drop(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                drop(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            drop(node.returns)
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs + [node.args.vararg, node.args.kwarg]:
                if a is not None:
                    drop(a.annotation)
        elif isinstance(node, ast.AnnAssign):
            drop(node.annotation)
        elif isinstance(node, ast.JoinedStr):
            drop(node)
        elif isinstance(node, ast.ImportFrom):
            drop(node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "round":
            for a in node.args[1:]:
                drop(a)  # the digits a figure is reported with
        elif (
            isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 3 and all(isinstance(e, ast.Constant) for e in node.elts)
        ):
            drop(node)
    return skip


def _is_text(node: ast.AST) -> bool:
    """Text, or text being built (`"a" + ("b" if x else "")`), or a list display being extended: `+` there
    concatenates, and `-` is a TypeError, not a plausible bug."""
    if isinstance(node, ast.BinOp):
        return _is_text(node.left) or _is_text(node.right)
    if isinstance(node, ast.IfExp):
        return _is_text(node.body) or _is_text(node.orelse)
    return isinstance(node, (ast.JoinedStr, ast.List, ast.ListComp)) or (
        isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes))
    )


def _changes(node: ast.AST) -> list[tuple[str, object]]:
    """The mutations of one node: (name, how), how being a function node -> new node, or "delete"."""
    out: list[tuple[str, object]] = []
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            if type(op) in CMP_FLIP:

                def flip(n, k=k):
                    n.ops[k] = CMP_FLIP[type(n.ops[k])]()
                    return n

                tag = f"[{k}]" if len(node.ops) > 1 else ""
                out.append((f"{type(op).__name__}->{CMP_FLIP[type(op)].__name__}{tag}", flip))
    elif isinstance(node, ast.BinOp) and type(node.op) in BIN_FLIP and not (_is_text(node.left) or _is_text(node.right)):

        def binop(n):
            n.op = BIN_FLIP[type(n.op)]()
            return n

        out.append((f"{type(node.op).__name__}->{BIN_FLIP[type(node.op)].__name__}", binop))
    elif isinstance(node, ast.AugAssign) and type(node.op) in BIN_FLIP and not _is_text(node.value):

        def aug(n):
            n.op = BIN_FLIP[type(n.op)]()
            return n

        out.append((f"{type(node.op).__name__}=->{BIN_FLIP[type(node.op)].__name__}=", aug))
    elif isinstance(node, ast.BoolOp):

        def boolop(n):
            n.op = ast.Or() if isinstance(n.op, ast.And) else ast.And()
            return n

        out.append(("and->or" if isinstance(node.op, ast.And) else "or->and", boolop))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.Invert)):
        out.append((f"drop {type(node.op).__name__.lower()}", lambda n: n.operand))
    elif (
        isinstance(node, ast.Constant)
        and not isinstance(node.value, (str, bytes))
        and node.value is not None
        and node.value is not Ellipsis
    ):
        v = node.value
        if isinstance(v, bool):
            new = not v
        elif isinstance(v, int):
            new = 1 if v == 0 else 0 if v == 1 else v + 1
        elif isinstance(v, float):
            new = 1.0 if v == 0 else v + 1.0
        else:
            return out
        out.append((f"{v!r}->{new!r}", lambda n, new=new: ast.Constant(new)))
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):

        def minmax(n):
            n.func = ast.Name("max" if n.func.id == "min" else "min", ast.Load())
            return n

        out.append((f"{node.func.id}->{'max' if node.func.id == 'min' else 'min'}", minmax))
    elif (
        isinstance(node, ast.Return)
        and node.value is not None
        and not (isinstance(node.value, ast.Constant) and (node.value.value is None or isinstance(node.value.value, bool)))
    ):

        def ret(n):
            n.value = ast.Constant(None)
            return n

        out.append(("return None", ret))
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        out.append(("delete call", "delete"))
    elif isinstance(node, ast.Raise):
        out.append(("delete raise", "delete"))
    return out


def make_mutants(rel: str) -> list[Mutant]:
    src = (ROOT / rel).read_text()
    tree = ast.parse(src)
    skip = _skipped_nodes(tree)
    out = []
    for i, node in enumerate(ast.walk(tree)):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        for name, how in _changes(node):
            text = ast.get_source_segment(src, node) or ast.unparse(node)
            if how == "delete":
                mutated = "pass"
            else:
                new = how(copy.deepcopy(node))
                mutated = ast.unparse(new)
                if mutated == ast.unparse(node):
                    continue
            out.append(Mutant(rel, node.lineno, node.col_offset, name, _one_line(text), _one_line(mutated), i))
    return out


def _replace(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for field, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, field, new)
            return
        if isinstance(value, list):
            for k, item in enumerate(value):
                if item is old:
                    value[k] = new
                    return
    raise RuntimeError("node not found in its parent")


def mutated_source(src: str, m: Mutant) -> str:
    tree = ast.parse(src)
    nodes = list(ast.walk(tree))
    parents = {id(c): p for p in nodes for c in ast.iter_child_nodes(p)}
    node = nodes[m.node]
    how = dict(_changes(node))[m.op]
    new = ast.copy_location(ast.Pass(), node) if how == "delete" else how(node)
    if new is not node:
        _replace(parents[id(node)], node, new)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


# ---------------------------------------------------------------------------------------------- running


class Workspace:
    """A snapshot of rtseg/ in a temporary folder that every Python process of a test run imports."""

    def __init__(self, folder: Path):
        self.folder = folder
        shutil.copytree(ROOT / "rtseg", folder / "rtseg", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in ("engines", "examples"):  # found beside the package (core/paths.py, cli.py)
            if (ROOT / name).exists():
                (folder / name).symlink_to(ROOT / name)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder / "rtseg")], check=True)
        self.originals = {}
        for d in ("cache", "home"):
            (folder / d).mkdir()
        self.env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(folder)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
            PYTHONDONTWRITEBYTECODE="1",
            RTSEG_CACHE_DIR=str(folder / "cache"),
            RTSEG_HOME=str(folder / "home"),
        )

    def original(self, rel: str) -> str:
        if rel not in self.originals:
            self.originals[rel] = (self.folder / rel).read_text()
        return self.originals[rel]

    def write(self, rel: str, text: str) -> None:
        self.original(rel)
        path = self.folder / rel
        path.write_text(text)
        for pyc in (path.parent / "__pycache__").glob(path.stem + ".*.pyc"):
            pyc.unlink()  # a same-size mutant written within the same second would pass pyc's mtime check

    def restore(self, rel: str) -> None:
        path = self.folder / rel
        path.write_text(self.original(rel))
        py_compile.compile(str(path), doraise=True)

    def imported_from(self, module: str) -> str:
        res = subprocess.run(
            [sys.executable, "-c", f"import {module}; print({module}.__file__)"],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
        )
        return res.stdout.strip() or res.stderr.strip()[-300:]

    def pytest(self, stage: dict, timeout: float) -> tuple[str, int, str, float]:
        """Run one test selection: (killed | survived | timeout | error, exit code, first failing test, seconds)."""
        args = [str(ROOT / t) for t in stage["tests"]]
        for d in stage.get("deselect", []):
            args += ["--deselect", d]
        shutil.rmtree(self.folder / "pt", ignore_errors=True)
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-p",
            "no:cacheprovider",
            "--timeout",
            "120",
            "-rf",
            f"--basetemp={self.folder / 'pt'}",
            *args,
        ]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=self.folder, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return "timeout", -9, "", time.perf_counter() - t0
        seconds = time.perf_counter() - t0
        # pytest's summary lines (FAILED tests/x.py::name - why), not a captured log's "ERROR    logger:..."
        failed = next(
            (
                line.split(" - ")[0].split(" ", 1)[1]
                for line in out.splitlines()
                if line.startswith(("FAILED ", "ERROR "))
                and len(line.split()) > 1
                and ("::" in line.split()[1] or line.split()[1].endswith(".py"))
            ),
            "",
        )
        failed = failed[failed.find("tests/") :] if "tests/" in failed else failed
        if proc.returncode == 0:
            return "survived", 0, "", seconds
        if proc.returncode in (1, 2, 3, 4):
            # 1: tests failed; 2: collection broke; 3/4: conftest could not even import rtseg (tests/helpers.py
            # imports rtseg.core): the tests cannot pass on it, which is what a kill means
            return "killed", proc.returncode, failed or out.strip().splitlines()[-1][:200], seconds
        return "error", proc.returncode, out.strip()[-300:], seconds


def stages(spec: dict) -> list[tuple[str, dict]]:
    out = [("fast", {"tests": spec["fast"], "deselect": spec.get("deselect", [])})]
    if spec.get("slow"):
        out.append(("slow", {"tests": spec["slow"]}))
    return out


def run_target(name: str, spec: dict, ws: Workspace, max_mutants: int, seed: int, log) -> dict:
    t_start = time.perf_counter()
    mutants = [m for rel in spec["files"] for m in make_mutants(rel)]
    chosen = mutants
    if len(mutants) > max_mutants:
        keep = set(random.Random(f"{seed}:{name}").sample(range(len(mutants)), max_mutants))
        chosen = [m for k, m in enumerate(mutants) if k in keep]
    log(f"== {name}: {len(mutants)} mutants in {', '.join(spec['files'])}; running {len(chosen)}")

    # baseline: the files unparsed but unchanged pass every selection; its time sets the timeouts
    for rel in spec["files"]:
        ws.write(rel, ast.unparse(ast.parse(ws.original(rel))) + "\n")
    module = spec["files"][0][:-3].replace("/", ".")
    where = ws.imported_from(module)
    if not where.startswith(str(ws.folder)):
        raise SystemExit(f"{module} is imported from {where}, not from the snapshot in {ws.folder}")
    baseline = {}
    for stage, sel in stages(spec):
        status, rc, failed, seconds = ws.pytest(sel, timeout=1800)
        if status != "survived":
            raise SystemExit(f"{name}: the {stage} tests fail on the unmutated code ({status}, exit {rc}): {failed}")
        baseline[stage] = round(seconds, 1)
    for rel in spec["files"]:
        ws.restore(rel)
    log(f"   baseline passes: {baseline} s")

    # canary: a module that cannot be imported must fail the fast selection (the snapshot is what runs)
    first = spec["files"][0]
    ws.write(first, "raise RuntimeError('mutation canary')\n" + ws.original(first))
    status, *_ = ws.pytest(stages(spec)[0][1], timeout=600)
    ws.restore(first)
    if status != "killed":
        raise SystemExit(f"{name}: the canary in {first} was not noticed ({status}): the tests do not run the snapshot")

    limits = {stage: max(90.0, 4 * s + 30) for stage, s in baseline.items()}
    for k, m in enumerate(chosen, 1):
        ws.write(m.file, mutated_source(ws.original(m.file), m))
        try:
            for stage, sel in stages(spec):
                status, rc, failed, seconds = ws.pytest(sel, timeout=limits[stage])
                m.status, m.stage, m.killer = status, stage, failed
                m.seconds = round(m.seconds + seconds, 1)
                if status != "survived":
                    break
        finally:
            ws.restore(m.file)
        log(
            f"   [{k}/{len(chosen)}] {m.status:<8} {m.seconds:6.1f}s {m.id}  {m.original[:60]!r} -> {m.mutated[:60]!r}"
            + (f"  ({m.stage}: {m.killer[:80]})" if m.status == "killed" else "")
        )

    counts = {s: sum(m.status == s for m in chosen) for s in ("killed", "survived", "timeout", "error")}
    run = len(chosen) - counts["error"]
    return {
        "files": spec["files"],
        "tests": {s: sel for s, sel in stages(spec)},
        "generated": len(mutants),
        "run": len(chosen),
        **counts,
        "score": round((counts["killed"] + counts["timeout"]) / run, 3) if run else None,
        "baseline_s": baseline,
        "timeout_s": limits,
        "seconds": round(time.perf_counter() - t_start, 1),
        "max_mutants": max_mutants,
        "seed": seed,
        "per_file": {
            rel: {
                "generated": sum(m.file == rel for m in mutants),
                "run": sum(m.file == rel for m in chosen),
                **{s: sum(m.file == rel and m.status == s for m in chosen) for s in counts},
            }
            for rel in spec["files"]
        },
        "mutants": [asdict(m) | {"id": m.id} for m in chosen],
    }


# ---------------------------------------------------------------------------------------------- report


def report(doc: dict) -> list[str]:
    lines = [
        "# Mutation testing: what the tests catch in metrics, outputs, stats, the selector and core",
        "",
        header_markdown(doc["env"]),
        f"- snapshot: rtseg/ at {doc['env'].get('commit', '?')}",
        "",
    ]
    lines += [
        "One mutant is one small change to one file (a comparison, an operator, a constant, a deleted call or",
        "raise, a return value replaced by None). Killed: a selected test failed; survived: the tests passed",
        "on it. Score = (killed + timeout) / run. Targets run at other times say so in the last column.",
        "",
        "| target | files | mutants | run | killed | timeout | survived | score | minutes | run on |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, t in doc["targets"].items():
        files = ", ".join(Path(f).name for f in t["files"]) if len(t["files"]) <= 2 else f"{len(t['files'])} files in rtseg/core"
        when = "this run" if t["env"]["date"] == doc["env"]["date"] else f"{t['env']['date'][:16]}: `{t['env']['command']}`"
        lines.append(
            f"| {name} | {files} | {t['generated']} | {t['run']} | {t['killed']} | {t['timeout']} | "
            f"{t['survived']} | {t['score']:.2f} | {t['seconds'] / 60:.1f} | {when} |"
        )
    lines.append("")
    for name, t in doc["targets"].items():
        if len(t["files"]) > 2:
            lines += [f"{name}, per file:", "", "| file | mutants | run | killed | timeout | survived |", "|---|---:|---:|---:|---:|---:|"]
            lines += [
                f"| {Path(f).name} | {c['generated']} | {c['run']} | {c['killed']} | {c['timeout']} | {c['survived']} |"
                for f, c in t["per_file"].items()
            ]
            lines.append("")
    lines += ["Tests run per target (fast on every mutant, with -x; slow only on what fast let through):", ""]
    for name, t in doc["targets"].items():
        sel = t["tests"]
        lines.append(
            f"- {name}: fast {', '.join(sel['fast']['tests'])}"
            + (f" (less {len(sel['fast']['deselect'])} slow ones)" if sel['fast'].get('deselect') else "")
            + (f"; slow {', '.join(sel['slow']['tests'])}" if "slow" in sel else "")
        )
    lines += [
        "",
        "## Surviving mutants",
        "",
        "Verdict: *equivalent* (no behaviour a user or caller could notice changes), *gap* (a real bug no test",
        "notices; *gap, closed*: a test added since kills it, named, checked by applying the change to a later commit),",
        "*caught elsewhere* (a test outside this target's selection fails on it), or *not reviewed*.",
        "",
        "| where | change | original | mutated | verdict |",
        "|---|---|---|---|---|",
    ]
    for t in doc["targets"].values():
        for m in t["mutants"]:
            if m["status"] == "survived":
                kind, why = VERDICTS.get(m["id"], ("not reviewed", ""))
                lines.append(
                    f"| {m['file']}:{m['line']} | {m['op']} | `{_md(m['original'])}` | `{_md(m['mutated'])}` | "
                    f"**{kind}**{': ' + why if why else ''} |"
                )
    if FIXED:
        lines += [
            "",
            "## Survivors of the first run that tests added since kill",
            "",
            "Each was applied again to the file the first run mutated (the commit in `FIXED_AT`); the test named",
            "fails on it and passes on the real file. (The target's row above is a later run on the code of",
            "its date: its sample of mutants differs where the file changed.)",
            "",
            "| mutant (file:line:col:change) | original -> mutated | killed by |",
            "|---|---|---|",
        ]
        lines += [f"| {k} | `{_md(orig)}` -> `{_md(mut)}` | {test} |" for k, (orig, mut, test) in FIXED.items()]
    timeouts = [m for t in doc["targets"].values() for m in t["mutants"] if m["status"] == "timeout"]
    if timeouts:
        lines += [
            "",
            "Timeouts (counted as caught: the tests did not pass): " + ", ".join(f"{m['file']}:{m['line']} {m['op']}" for m in timeouts),
        ]
    return lines


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--only",
        action="append",
        choices=list(TARGETS),
        help="run these targets (repeat); the others are kept from the existing --out .json",
    )
    ap.add_argument("--max-mutants", type=int, default=20, help="at most this many mutants per target (seeded sample)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="only count the mutants per target and print them")
    ap.add_argument("--report", action="store_true", help="only write the .md again from the --out .json (after editing VERDICTS or FIXED)")
    ap.add_argument("--out", default="benchmarks/results/mutation_cpu")
    args = ap.parse_args()

    names = args.only or list(TARGETS)
    if args.list:
        for name in names:
            ms = [m for rel in TARGETS[name]["files"] for m in make_mutants(rel)]
            print(f"{name}: {len(ms)} mutants")
            for m in ms:
                print(f"   {m.id}  {m.original[:70]!r} -> {m.mutated[:70]!r}")
        return

    if args.report:
        doc = json.loads(Path(args.out).with_suffix(".json").read_text())
        Path(args.out).with_suffix(".md").write_text("\n".join(report(doc)) + "\n")
        return

    env = environment()
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    env["commit"] = git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if git("status", "--porcelain", "rtseg") else "")
    out = Path(args.out)
    doc = {"env": env, "targets": {}}
    if args.only and out.with_suffix(".json").exists():
        old = json.loads(out.with_suffix(".json").read_text())
        doc["targets"] = {k: v for k, v in old["targets"].items() if k in TARGETS}

    def log(msg: str) -> None:
        print(msg, flush=True)

    with tempfile.TemporaryDirectory(prefix="rtseg-mutation-") as tmp:
        ws = Workspace(Path(tmp))
        for name in names:
            doc["targets"][name] = run_target(name, TARGETS[name], ws, args.max_mutants, args.seed, log) | {"env": env}
            doc["targets"] = {k: doc["targets"][k] for k in TARGETS if k in doc["targets"]}
            write_report(out, report(doc), doc)  # after each target: a long run that stops keeps what it did


if __name__ == "__main__":
    main()
