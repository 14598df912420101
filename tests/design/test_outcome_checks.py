"""The refusal of an outcome with nothing to model, from the rows or from the partitions'
extents (a Dask frame's partitions send ``outcome_extent`` and the client combines them)."""

from __future__ import annotations

import numpy as np
import pytest

from mixedglm.design.checks import (
    check_outcome_extent,
    check_outcome_varies,
    combine_extents,
    outcome_extent,
)
from mixedglm.errors import DataError

CASES = [
    # (family, y, trials or None, refused, words)
    ("bernoulli", [0, 0, 0, 0], None, True, "is 0 in every observation"),
    ("bernoulli", [1, 1, 1, 1], None, True, "is 1 in every observation"),
    ("bernoulli", [0, 1, 0, 0], None, False, ""),
    ("binomial", [2, 3, 1, 4], [2, 3, 1, 4], True, "a success in every trial"),
    ("binomial", [2, 0, 1, 4], [2, 3, 1, 4], False, ""),
    ("poisson", [0, 0, 0, 0], None, True, "is 0 in every observation"),
    ("poisson", [3, 3, 3, 3], None, False, ""),
    ("nbinomial", [0, 0, 0, 0], None, True, "is 0 in every observation"),
    ("gaussian", [2.5, 2.5, 2.5, 2.5], None, True, "is 2.5 in every observation"),
    ("gaussian", [2.5, 2.5, 2.5, 2.6], None, False, ""),
    ("gamma", [4.0, 4.0, 4.0, 4.0], None, True, "its variance is zero"),
]


@pytest.mark.parametrize(("family", "y", "trials", "refused", "words"), CASES)
def test_rows_and_partitions_decide_alike(family, y, trials, refused, words):
    y = np.asarray(y, dtype=float)
    n = None if trials is None else np.asarray(trials, dtype=float)
    whole = outcome_extent(y, n)
    parts = [outcome_extent(y[:1], None if n is None else n[:1])]
    parts += [outcome_extent(y[1:], None if n is None else n[1:]), outcome_extent(y[:0])]
    assert np.array_equal(combine_extents(parts), whole)
    if refused:
        with pytest.raises(DataError, match=f"outcome 'v' {words}|{words}"):
            check_outcome_varies(y, "v", family, n)
        with pytest.raises(DataError, match=words):
            check_outcome_extent(combine_extents(parts), "v", family, n is not None)
    else:
        check_outcome_varies(y, "v", family, n)
        check_outcome_extent(combine_extents(parts), "v", family, n is not None)


def test_no_rows_leave_the_decision_to_the_sample_size_checks():
    check_outcome_extent(outcome_extent(np.zeros(0)), "v", "bernoulli", False)
