"""The examples in docstrings run: every module of rtseg with a `>>>` example is doctested, so an example a user
copies from `help(rtseg.Segmenter)` cannot drift from what the code does."""

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rtseg"
MODULES = sorted(
    ".".join(("rtseg",) + p.relative_to(PACKAGE).with_suffix("").parts) for p in PACKAGE.rglob("*.py") if ">>>" in p.read_text()
)


def test_the_public_api_has_examples():
    # the API's entry points and the run settings carry examples (they are what users read first)
    assert {"rtseg.api.segmenter", "rtseg.api.result", "rtseg.runtime.settings", "rtseg.api.run"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    rerun = f"python -m pytest --doctest-modules {name.replace('.', '/')}.py"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (run: {rerun})"


def test_the_public_api_says_its_arguments_results_and_shows_an_example():
    import inspect

    import rtseg

    documented = {
        rtseg.Segmenter: ("Args:", ">>>"),
        rtseg.Segmenter.__call__: ("Args:", "Returns:", ">>>"),
        rtseg.Segmenter.stream: ("Args:", "Returns:"),
        rtseg.stream: ("Args:", "Returns:", ">>>"),
        rtseg.stream_many: ("Args:", "Returns:", ">>>"),
        rtseg.list_models: ("Returns:", ">>>"),
        rtseg.Result: (">>>",),
        rtseg.Result.overlay: ("Args:", "Returns:"),
        rtseg.Result.save: ("Args:", "Returns:", ">>>"),
    }
    missing = [
        f"{getattr(obj, '__qualname__', obj)}: {part}"
        for obj, parts in documented.items()
        for part in parts
        if part not in (inspect.getdoc(obj) or "")
    ]
    assert not missing, missing
