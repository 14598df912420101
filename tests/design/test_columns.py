"""The columns filled from a probe's model spec equal formulaic's model matrix on all rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from formulaic import model_matrix

from mixedglm.design import columns
from mixedglm.design.build import build_design, readable_name
from mixedglm.families import get_family
from mixedglm.formula import parse_formula


def frame(n: int = 3000, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "k": rng.integers(0, 40, size=n),
            "f": rng.integers(1, 5, size=n),
            "b": rng.random(n) < 0.3,
            "s": rng.choice(["north", "south", "east"], size=n),
            "c": pd.Categorical(
                rng.choice(["lo", "mid"], size=n), categories=["lo", "mid", "hi"], ordered=False
            ),
            "r": np.round(rng.uniform(0, 3, size=n), 0) / 2,
            "g": rng.integers(0, 60, size=n),
        }
    )


FAST = [
    "x + k",
    "x + C(f) + C(b) + s",
    "0 + C(f) + x",
    "C(s) + c + b",
    "C(r) + C(k)",
    "1",
    "0 + x",
    "c - 1",
]
SLOW = ["x:C(f)", "I(x ** 2) + k", "np.log(k + 1) + C(f)", "C(f, contr.sum) + x", "x * k"]


def rows_for(data: pd.DataFrame, seed: int) -> np.ndarray:
    """Estimation rows as the design makes them: some dropped, sorted by group, stable."""
    rng = np.random.default_rng(seed)
    keep = np.flatnonzero(rng.random(len(data)) < 0.9)
    order = np.argsort(data["g"].to_numpy()[keep], kind="stable")
    return keep[order]


@pytest.mark.parametrize("expr", FAST + SLOW)
@pytest.mark.parametrize("all_rows", [False, True])
def test_plan_equals_formulaic_on_the_estimation_rows(expr, all_rows):
    data = frame()
    rows = np.arange(len(data)) if all_rows else rows_for(data, 1)
    plan = columns.column_plan(expr, data, rows, "fixed part")
    assert plan.fast == (expr in FAST)
    mm = model_matrix(expr, data.iloc[rows], na_action="ignore")
    assert plan.names == tuple(readable_name(str(c)) for c in mm.columns)
    out = np.full((rows.size, len(plan.names)), np.nan)
    plan.fill(out, list(range(len(plan.names))))
    np.testing.assert_array_equal(out, np.asarray(mm, dtype=float))
    # the probe's spec is the whole data's: it rebuilds the same matrix on new data
    new = frame(n=200, seed=9)
    new = new[new["c"] != "hi"]
    np.testing.assert_array_equal(
        np.asarray(model_matrix(plan.spec, new), dtype=float),
        np.asarray(model_matrix(mm.model_spec, new), dtype=float),
    )
    assert plan.spec.column_names == mm.model_spec.column_names
    assert plan.spec.encoder_state == mm.model_spec.encoder_state


def test_levels_seen_only_in_dropped_rows_are_not_columns():
    data = frame()
    data.loc[data["f"] == 4, "x"] = np.nan  # level 4 of f only in rows with a missing x
    parsed = parse_formula("y ~ x + C(f) + (1 | g)")
    data["y"] = (np.arange(len(data)) % 3 == 0).astype(float)
    design = build_design(parsed, data, get_family("bernoulli"))
    assert design.x_names == ("x", "C(f)[2]", "C(f)[3]", "_cons")
    assert design.n_dropped_missing == int((data["f"] == 4).sum())
    rows = design.source_positions
    assert np.all(data["g"].to_numpy()[rows][1:] >= data["g"].to_numpy()[rows][:-1])
    np.testing.assert_array_equal(design.X[:, 0], data["x"].to_numpy()[rows])
    np.testing.assert_array_equal(design.X[:, 1], data["f"].to_numpy()[rows] == 2)
    np.testing.assert_array_equal(design.y, data["y"].to_numpy()[rows])
    assert list(design.row_index) == list(data.index[rows])


def test_collinear_and_ordinal_constant_columns():
    data = frame()
    data["x2"] = 2.0 * data["x"]
    data["y"] = (data["k"] > 20).astype(float)
    parsed = parse_formula("y ~ x + x2 + C(f) + (1 | g)")
    design = build_design(parsed, data, get_family("bernoulli"))
    assert design.x_names == ("x", "C(f)[2]", "C(f)[3]", "C(f)[4]", "_cons")
    assert design.omitted == (("x2", "collinearity"),)
    assert design.X.flags.c_contiguous
    np.testing.assert_array_equal(design.X[:, -1], 1.0)
    data["yo"] = data["f"]
    ordinal = build_design(
        parse_formula("yo ~ x + C(s) + (1 | g)"), data, get_family("ordinal", "logit")
    )
    assert ordinal.x_names == ("x", "C(s)[north]", "C(s)[south]")
    assert ordinal.X.shape == (len(data), 3)


def test_interaction_codes_are_the_value_tuples_sorted():
    """``_factor_codes`` of an interaction (``comm:mom``) combines each column's sorted codes:
    the codes and labels of a factorised MultiIndex; a missing value is a level of its own
    (new data's, which no fitted label matches)."""
    import pandas as pd

    from mixedglm.design.multilevel import _factor_codes

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "a": rng.choice([2.0, -1.0, 0.5], 500),
            "b": rng.choice(["y", "x", "z"], 500),
            "c": rng.integers(0, 40, 500),
        }
    )
    for cols in (("a", "b"), ("c", "b", "a"), ("b", "c")):
        keys = pd.MultiIndex.from_frame(frame[list(cols)])
        want, tuples = pd.factorize(keys, sort=True)
        codes, labels = _factor_codes(frame, cols)
        np.testing.assert_array_equal(codes, want)
        assert list(labels) == [":".join(str(v) for v in t) for t in tuples]
    frame.loc[:9, "a"] = np.nan
    codes, labels = _factor_codes(frame, ("a", "b"))
    assert all(label.startswith("nan:") for label in labels[codes[:10]])
    assert not any(label.startswith("nan:") for label in labels[codes[10:]])
