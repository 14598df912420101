"""The within/between decomposition: columns, estimation-sample means, within shares,
skipped variables and their messages, formulas, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mixedglm.design.hybrid import decompose, within_share_percent
from mixedglm.errors import DataError, FormulaError, MixedGLMError
from mixedglm.models.hybrid import parse_varlist


def _sample(frame: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    return frame.dropna(subset=cols)


def test_within_and_between_columns_use_the_estimation_sample_only(panel):
    dec = decompose(panel, "y", ["x1", "x2", "z"], "g", use=["x1", "x2"])
    sample = _sample(panel, ["y", "g", "x1", "x2", "z"])
    assert len(dec.frame) == len(sample) == len(panel) - 4
    assert dec.n_dropped == 4
    means = sample.groupby("g")[["x1", "x2"]].transform("mean")
    for v in ("x1", "x2"):
        np.testing.assert_allclose(dec.frame[f"B__{v}"], means[v], rtol=0, atol=1e-13)
        np.testing.assert_allclose(dec.frame[f"W__{v}"], sample[v] - means[v], atol=1e-13)
    np.testing.assert_array_equal(dec.frame["R__z"], sample["z"])
    # the rows with a missing x2 changed their clusters' means of x1 too
    full_mean = panel.groupby("g")["x1"].transform("mean").loc[sample.index]
    assert not np.allclose(dec.frame["B__x1"], full_mean)
    assert dec.columns == ("R__z", "W__x1", "W__x2", "B__x1", "B__x2")
    assert dec.notes[0].startswith("note: 4 observations dropped because of missing values")


def test_cre_columns_are_the_variable_and_its_mean(panel):
    dec = decompose(panel, "y", ["x1", "z"], "g", use=["x1"], cre=True)
    sample = _sample(panel, ["y", "g", "x1", "z"])
    np.testing.assert_array_equal(dec.frame["W__x1"], sample["x1"])
    np.testing.assert_allclose(
        dec.frame["D__x1"], sample.groupby("g")["x1"].transform("mean"), atol=1e-13
    )
    assert dec.columns == ("R__z", "W__x1", "D__x1")


def test_residual_columns_sorted_and_use_variables_added(panel):
    # as in the seed: covariates female usa socialscience -> R__female R__socialscience R__usa
    frame = panel.assign(usa=panel["z"], socialscience=1 - panel["z"], female=panel["z"] * 0.5)
    dec = decompose(frame, "y", ["female", "usa", "socialscience"], "g", use=["x2", "x1"])
    assert dec.residual == ("R__female", "R__socialscience", "R__usa")
    assert dec.within == ("W__x2", "W__x1")  # use() order
    assert dec.between == ("B__x2", "B__x1")
    assert dec.decomposed == ("x2", "x1")


@pytest.mark.parametrize(("kind", "power"), [("quadratic", 2), ("cubic", 3), ("quartic", 4)])
def test_nonlinearities_add_powers_of_the_cluster_means(panel, kind, power):
    dec = decompose(panel, "y", ["x1", "x2"], "g", nonlinearities=kind)
    expected = tuple(f"B{k}__{v}" for k in range(2, power + 1) for v in ("x1", "x2"))
    assert dec.powers == expected
    np.testing.assert_allclose(dec.frame[f"B{power}__x1"], dec.frame["B__x1"] ** power)
    cre = decompose(panel, "y", ["x1"], "g", nonlinearities=kind, cre=True)
    assert cre.powers[-1] == f"D{power}__x1"


def _share_by_hand(x: np.ndarray, g: np.ndarray) -> int:
    """xtreg, re's variance components of x alone, written out cluster by cluster."""
    groups = {}
    for value, key in zip(x, g, strict=True):
        groups.setdefault(key, []).append(value)
    n_obs, n_groups = len(x), len(groups)
    ssr_w = sum(sum((v - np.mean(vals)) ** 2 for v in vals) for vals in groups.values())
    s2_e = ssr_w / (n_obs - n_groups)
    means = [np.mean(vals) for vals in groups.values()]
    grand = np.mean(means)
    s2_b = sum((m - grand) ** 2 for m in means) / (n_groups - 1)
    t_bar = n_groups / sum(1 / len(vals) for vals in groups.values())
    s2_u = max(0.0, s2_b - s2_e / t_bar)
    return math.floor(100 * (1 - s2_u / (s2_u + s2_e)))


def test_within_share_small_example_by_hand():
    # clusters (1, 3), (2, 4), (10, 12): s2_e = 2, s2_u = 73/3 - 1, rho = 0.921 -> 7 %
    x = np.array([1.0, 3, 2, 4, 10, 12])
    codes = np.array([0, 0, 1, 1, 2, 2])
    assert within_share_percent(x, codes) == 7
    assert _share_by_hand(x, codes) == 7


def test_within_share_matches_the_written_out_formula(panel):
    sample = panel.dropna()
    codes = pd.factorize(sample["g"])[0]
    for v in ("x1", "x2", "y"):
        x = sample[v].to_numpy()
        assert within_share_percent(x, codes) == _share_by_hand(x, codes)
    assert within_share_percent(sample["z"].to_numpy(), codes) == 0
    # no cluster effect in x: (nearly) all of its variance is within clusters
    x = np.random.default_rng(3).normal(size=400)
    assert within_share_percent(x, np.repeat(np.arange(40), 10)) >= 90


def test_percentage_skips_variables_with_xthybrid_messages(panel):
    sample = panel.dropna()
    codes = pd.factorize(sample["g"])[0]
    share_x1 = within_share_percent(sample["x1"].to_numpy(), codes)
    share_x2 = within_share_percent(sample["x2"].to_numpy(), codes)
    assert share_x1 < share_x2
    dec = decompose(panel, "y", ["x1", "x2", "z"], "g", use=["x1", "x2"], percentage=share_x1)
    assert dec.decomposed == ("x2",)  # at or below the threshold: skipped
    assert dec.residual == ("R__x1", "R__z")
    assert dec.within_percent == {"x1": share_x1, "x2": share_x2}
    assert dec.skipped[0].name == "x1"
    assert dec.notes[-3:] == (
        "The variable 'x1' does not vary sufficiently within clusters",
        "and will not be used to create additional regressors.",
        f"[~{share_x1}% of the total variance in 'x1' is within clusters]",
    )
    # a cluster-level variable in use() is skipped with the default percentage (0)
    dec = decompose(panel, "y", ["x1", "z"], "g")
    assert dec.decomposed == ("x1",)
    assert dec.skipped[0].name == "z"
    assert "[~0% of the total variance in 'z' is within clusters]" in dec.notes


def test_input_frame_is_not_modified(panel):
    before = panel.copy()
    decompose(panel, "y", ["x1", "x2"], "g", cre=True, nonlinearities="cubic")
    pd.testing.assert_frame_equal(panel, before)


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("y ~ x1 + x2", ("y", ["x1", "x2"])),
        ("y ~ x1 x2 z", ("y", ["x1", "x2", "z"])),
        ("y x1 x2", ("y", ["x1", "x2"])),
        ("  y~x1+x2  z ", ("y", ["x1", "x2", "z"])),
        ("y ~", ("y", [])),
    ],
)
def test_formulas_in_both_syntaxes(formula, expected):
    assert parse_varlist(formula) == expected


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("y ~ x1 + (1 | g)", "random effects come from cluster= and randomslope="),
        ("y ~ C(x1)", "'C(x1)' in 'y ~ C(x1)' is not a variable name"),
        ("y ~ x1 - 1", "a hybrid model always has a constant"),
        ("~ x1", "no outcome"),
        ("y ~ x ~ z", "more than one '~'"),
    ],
)
def test_formulas_that_are_not_variable_lists(formula, message):
    with pytest.raises(FormulaError) as err:
        parse_varlist(formula)
    assert message in str(err.value)


def test_use_variable_not_in_the_data(panel):
    with pytest.raises(DataError, match=r"^use\(\) variable 'x3' not found in the data$"):
        decompose(panel, "y", ["x1"], "g", use=["x3"])


def test_cluster_variable_with_missing_values(panel):
    bad = panel.assign(g=panel["g"].where(panel.index != 5))
    with pytest.raises(DataError, match=r"cluster variable 'g' has 1 missing value: "):
        decompose(bad, "y", ["x1"], "g")


@pytest.mark.parametrize("name", ["W__x", "B__x", "R__age", "D__x", "B2__x"])
def test_names_with_generated_prefixes_are_refused(panel, name):
    with pytest.raises(DataError) as err:
        decompose(panel.assign(**{name: panel["x1"]}), "y", ["x2", name], "g")
    text = str(err.value)
    assert f"variable '{name}' starts with a prefix" in text
    assert "cannot be confused with generated ones" in text
    assert "\n" not in text


def test_outcome_without_within_cluster_variation(panel):
    flat = panel.assign(y=panel.groupby("g")["x1"].transform("mean"))
    with pytest.raises(DataError, match="outcome 'y' does not vary within any cluster of 'g'"):
        decompose(flat, "y", ["x1"], "g")


def test_other_bad_options(panel):
    with pytest.raises(MixedGLMError, match="nonlinearities must be one of quadratic"):
        decompose(panel, "y", ["x1"], "g", nonlinearities="square")
    with pytest.raises(MixedGLMError, match="percentage must be a number in"):
        decompose(panel, "y", ["x1"], "g", percentage=100)
    with pytest.raises(DataError, match="covariate 'w' is not numeric"):
        decompose(panel.assign(w="a"), "y", ["x1", "w"], "g", use=["x1"])
    with pytest.raises(MixedGLMError, match="cluster variable 'g' cannot also be in the model"):
        decompose(panel, "y", ["x1", "g"], "g")
    with pytest.raises(DataError, match="outcome 'yy' not found in the data"):
        decompose(panel, "yy", ["x1"], "g")
