"""Preparation of conditional fixed-effects models: informative groups, omitted covariates,
Stata's notes and the errors."""

from __future__ import annotations

import numpy as np
import pytest

from mixedglm.design.within import prepare_within
from mixedglm.errors import DataError


def panel(sizes, seed=0, p=2):
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(len(sizes)), sizes)
    return codes, rng.normal(size=(codes.size, p))


def test_logit_drops_uninformative_groups_with_stata_notes():
    # groups: informative (2 events), all 1 (2 rows), all 0 (3 rows), singleton 0, informative
    y = np.array([1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0], dtype=float)
    codes = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 4, 4])
    X = np.random.default_rng(1).normal(size=(13, 2))
    w = prepare_within(y, X, ["x1", "x2"], codes, "logit", outcome="paprbest")
    assert w.notes == (
        "note: multiple positive outcomes within groups encountered.",
        "note: 3 groups (6 obs) dropped because of all positive or all negative outcomes.",
    )
    assert w.rows.tolist() == [True] * 4 + [False] * 6 + [True] * 3
    np.testing.assert_array_equal(w.starts, [0, 4, 7])
    np.testing.assert_array_equal(w.group_codes, [0, 4])
    assert (w.n_obs, w.n_groups, w.n_obs_dropped, w.n_groups_dropped) == (7, 2, 6, 3)
    assert (w.group_size_min, w.group_size_avg, w.group_size_max) == (3, 3.5, 4)
    assert w.multiple_positive
    assert w.names == ("x1", "x2") and w.omitted == ()
    Xk = w.take_X(X)
    assert Xk.flags.c_contiguous and Xk.shape == (7, 2)
    np.testing.assert_array_equal(w.take_rows(y), y[w.rows])


def test_logit_note_singular_and_thousands_separator():
    y = np.array([1, 0, 0, 0], dtype=float)
    codes = np.array([0, 0, 1, 1])
    w = prepare_within(y, np.arange(4.0)[:, None], ["x"], codes, "logit")
    assert w.notes == (
        "note: 1 group (2 obs) dropped because of all positive or all negative outcomes.",
    )
    assert not w.multiple_positive
    # 1,200 singleton groups plus one informative group
    y = np.r_[np.zeros(1200), 1.0, 0.0]
    codes = np.r_[np.arange(1200), 1200, 1200]
    w = prepare_within(y, np.arange(1202.0)[:, None], ["x"], codes, "logit")
    assert w.notes == (
        "note: 1,200 groups (1,200 obs) dropped because of all positive or all negative outcomes.",
    )


def test_logit_omits_constant_and_collinear_covariates():
    sizes = [5, 6, 4, 7]
    codes, Z = panel(sizes, p=2)
    y = np.tile([1.0, 0.0], 11)
    female = np.repeat([0.0, 1.0, 1.0, 0.0], sizes)  # constant within each group
    x3 = Z[:, 0] - 2 * Z[:, 1]  # collinear in the raw data
    x4 = Z[:, 1] + np.repeat([3.0, -1.0, 0.5, 2.0], sizes)  # collinear only within groups
    X = np.column_stack([Z[:, 0], female, Z[:, 1], x3, x4])
    names = ["x1", "female", "x2", "x3", "x4"]
    w = prepare_within(y, X, names, codes, "logit")
    assert w.notes == (
        "note: multiple positive outcomes within groups encountered.",
        "note: female omitted because of no within-group variance.",
        "note: x3 omitted because of collinearity.",
        "note: x4 omitted because of collinearity.",
    )
    assert w.columns.tolist() == [0, 2]
    assert w.names == ("x1", "x2")
    assert [(c.index, c.name, c.reason) for c in w.omitted] == [
        (1, "female", "no within-group variance"),
        (3, "x3", "collinearity"),
        (4, "x4", "collinearity"),
    ]


def test_within_variance_is_judged_on_the_kept_groups():
    # x varies only inside group 1, which has no events and is dropped
    y = np.array([1, 0, 0, 0, 0, 1], dtype=float)
    codes = np.array([0, 0, 1, 1, 2, 2])
    x = np.array([1.0, 1.0, 2.0, 3.0, 5.0, 5.0])
    z = np.array([0.0, 1.0, 0.0, 0.0, 2.0, 0.0])
    w = prepare_within(y, np.column_stack([x, z]), ["x", "z"], codes, "logit")
    assert w.notes[-1] == "note: x omitted because of no within-group variance."
    assert w.names == ("z",)


def test_logit_outcome_errors():
    codes, X = panel([3, 3])
    with pytest.raises(DataError, match=r"outcome paprbest must be coded 0/1.*2, 3"):
        prepare_within(
            np.array([0, 1, 2, 3, 0, 1.0]), X, ["a", "b"], codes, "logit", outcome="paprbest"
        )
    with pytest.raises(DataError, match="outcome paprbest has missing"):
        prepare_within(
            np.array([0, 1, np.nan, 0, 0, 1.0]), X, ["a", "b"], codes, "logit", outcome="paprbest"
        )
    with pytest.raises(DataError, match="paprbest does not vary in any group"):
        prepare_within(
            np.array([1, 1, 1, 0, 0, 0.0]), X, ["a", "b"], codes, "logit", outcome="paprbest"
        )


def test_error_when_every_covariate_is_omitted():
    codes = np.repeat([0, 1], 3)
    y = np.array([1, 0, 0, 0, 1, 0.0])
    female = np.repeat([0.0, 1.0], 3)
    with pytest.raises(DataError, match="female omitted because of no within-group variance"):
        prepare_within(y, female[:, None], ["female"], codes, "logit")
    with pytest.raises(DataError, match="at least one covariate"):
        prepare_within(y, np.zeros((6, 0)), [], codes, "logit")


def test_poisson_drops_singletons_and_all_zero_groups():
    # groups: singleton (count 4), all zero (3 rows), informative, all zero (2), informative
    y = np.array([4, 0, 0, 0, 1, 0, 2, 0, 0, 3, 0.0])
    codes = np.array([0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4])
    rng = np.random.default_rng(2)
    x1 = rng.normal(size=11)
    size = np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], [1, 3, 3, 2, 2])  # constant within groups
    X = np.column_stack([x1, size, 2 * x1])
    w = prepare_within(y, X, ["x1", "size", "x1x2"], codes, "poisson", outcome="deaths")
    assert w.notes == (
        "note: 1 group (1 obs) dropped because of only one obs per group",
        "note: 2 groups (5 obs) dropped because of all zero outcomes",
        "note: x1x2 omitted because of collinearity.",
        "note: size dropped because it is constant within group",
    )
    np.testing.assert_array_equal(w.group_codes, [2, 4])
    np.testing.assert_array_equal(w.starts, [0, 3, 5])
    assert w.names == ("x1",)
    assert (w.n_groups_dropped, w.n_obs_dropped) == (3, 6)
    assert not w.multiple_positive


def test_poisson_outcome_errors():
    codes, X = panel([3, 3])
    with pytest.raises(DataError, match="deaths must be greater than or equal to zero"):
        prepare_within(
            np.array([0, 1, -1, 2, 0, 1.0]), X, ["a", "b"], codes, "poisson", outcome="deaths"
        )
    with pytest.raises(DataError, match=r"outcome deaths must be a count.*0\.5"):
        prepare_within(
            np.array([0, 1, 0.5, 2, 0, 1.0]), X, ["a", "b"], codes, "poisson", outcome="deaths"
        )
    with pytest.raises(DataError, match="all zero or there is only one observation"):
        prepare_within(np.zeros(6), X, ["a", "b"], codes, "poisson", outcome="deaths")


def test_rows_must_be_sorted_by_group():
    X = np.zeros((4, 1))
    with pytest.raises(ValueError, match="sorted by group"):
        prepare_within(np.array([1, 0, 1, 0.0]), X, ["x"], np.array([0, 1, 0, 1]), "logit")
    with pytest.raises(ValueError, match="kind"):
        prepare_within(np.array([1, 0, 1, 0.0]), X, ["x"], np.array([0, 0, 1, 1]), "probit")
