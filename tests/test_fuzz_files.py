"""The reader path on damaged files (hypothesis): truncated, bit-flipped, re-chunked and header-corrupted
clips and images either run with every read frame accounted for, or are refused in one line; never a
traceback, never a hang. benchmarks/fuzz_inputs.py runs many more cases."""

import os

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from mutations import MUTATIONS, check_run, make_seeds, mutate  # noqa: E402

OPS = st.lists(st.tuples(st.sampled_from(MUTATIONS), st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=3)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return make_seeds(tmp_path_factory.mktemp("seeds"))


@settings(
    max_examples=int(os.environ.get("RTSEG_FUZZ_FILES", "8")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 3), ops=OPS)
def test_a_damaged_file_is_processed_or_refused_cleanly(seeds, tiny_model, tmp_path, seed, ops):
    src = seeds[seed]
    damaged = tmp_path / f"damaged{src.suffix}"
    damaged.write_bytes(mutate(src.read_bytes(), ops))
    outcome, problem = check_run(damaged, tiny_model, tmp_path / "out")
    assert not problem, (src.name, ops, outcome, problem)
