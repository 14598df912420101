"""Passes over the data in blocks of rows (no temporary of the data's length) give what one
pass over all rows gives, wherever a block boundary falls."""

from __future__ import annotations

import numpy as np
import pytest

from mixedglm.design.arrays import BLOCK_ROWS, ClusterArrays
from mixedglm.design.checks import check_matrix, separation_suspected
from mixedglm.engines.glm import GLMObjective
from mixedglm.errors import DataError
from mixedglm.families import get_family


def _arrays(weights: bool, seed: int = 3) -> ClusterArrays:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 40, size=9_000)  # ~180,000 rows: several blocks, ragged cuts
    n = int(sizes.sum())
    assert n > 2 * BLOCK_ROWS
    trials = rng.integers(1, 6, size=n).astype(float)
    return ClusterArrays(
        y=rng.binomial(trials.astype(int), 0.4).astype(float),
        trials=trials,
        offset=np.zeros(n),
        X=np.ones((n, 1)),
        Z=np.ones((n, 1)),
        starts=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        weights=rng.integers(1, 4, size=n).astype(float) if weights else None,
    )


@pytest.mark.parametrize("weights", [False, True])
def test_cluster_log_constants_equal_one_pass(weights: bool) -> None:
    arrays = _arrays(weights)
    family = get_family("binomial")
    per_row = family.log_constant(arrays.y, arrays.trials)
    if weights:
        per_row = per_row * arrays.weights
    expected = np.add.reduceat(per_row, arrays.starts[:-1])
    got = arrays.log_constants(family)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)
    glm = GLMObjective(arrays.X, arrays.y, arrays.trials, arrays.offset, family, arrays.weights)
    assert glm._const == pytest.approx(float(per_row.sum()), rel=1e-12)


def test_check_matrix_finds_a_bad_value_in_a_later_block() -> None:
    X = np.ones((3 * BLOCK_ROWS + 17, 3))
    check_matrix(X, ["a", "b", "_cons"], "fixed part")
    for value, words in ((np.inf, "infinite"), (np.nan, "NaN"), (1e16, "larger than")):
        bad = X.copy()
        bad[2 * BLOCK_ROWS + 5, 1] = value
        with pytest.raises(DataError) as err:
            check_matrix(bad, ["a", "b", "_cons"], "fixed part")
        assert "'b'" in str(err.value) and words in str(err.value)


def test_separation_suspected_reads_the_largest_magnitude_of_each_column() -> None:
    X = np.zeros((10, 2))
    X[:, 1] = 1.0
    X[3, 0] = -20.0  # the reach is |min| here, not max
    beta, se = np.array([1.0, 0.1]), np.array([0.1, 0.1])
    assert separation_suspected(X, ["x", "_cons"], beta, se)
    X[3, 0] = -1.0
    assert not separation_suspected(X, ["x", "_cons"], beta, se)
