"""Bad input gets one clear error naming the variable and the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.errors import DataError, FormulaError, MixedGLMError


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 200
    g = np.repeat(np.arange(20), 10)
    x = rng.normal(size=n)
    y = rng.binomial(1, 1 / (1 + np.exp(-(0.3 * x + rng.normal(size=20)[g]))))
    return pd.DataFrame({"y": y, "x": x, "g": g, "count": rng.poisson(2.0, n), "w": x * 2})


def fit(formula: str, data: pd.DataFrame, **kw):
    return mg.glmm(formula, data, nolog=True, quiet=True, **kw)


def test_unknown_column_is_named_with_a_suggestion(frame):
    with pytest.raises(DataError, match=r"variable 'xx' not found.*did you mean 'x'"):
        fit("y ~ xx + (1 | g)", frame)


def test_unknown_outcome(frame):
    with pytest.raises(DataError, match="outcome 'yy' not found"):
        fit("yy ~ x + (1 | g)", frame)


@pytest.mark.parametrize(
    ("formula", "where"),
    [
        ("y ~ x + (1 | g", "never closed (position 9)"),
        ("y ~ x + ", "without a term"),
        ("y x + (1 | g)", "exactly one '~'"),
        ("y ~ x) + (1 | g)", "')' without a matching '(' at position 6"),
        ("y ~ x + ( | g)", "nothing before '|'"),
        ("y ~ x + (1 | )", "no grouping variable"),
        ("~ x + (1 | g)", "no outcome"),
    ],
)
def test_formula_that_does_not_parse_says_where(frame, formula, where):
    with pytest.raises(FormulaError, match=None) as err:
        fit(formula, frame)
    assert where in str(err.value)


def test_outcome_not_binary_for_a_logit(frame):
    bad = frame.assign(y=frame["count"])
    with pytest.raises(DataError, match=r"outcome .y. must be 0 or 1 for a logistic model"):
        fit("y ~ x + (1 | g)", bad)


def test_negative_and_fractional_counts_for_poisson(frame):
    with pytest.raises(DataError, match="outcome 'x' has negative values"):
        fit("x ~ w + (1 | g)", frame, family="poisson")
    with pytest.raises(DataError, match="outcome 'c' has non-integer values"):
        fit("c ~ x + (1 | g)", frame.assign(c=frame["count"] + 0.5), family="poisson")


def test_grouping_variable_missing_from_the_data(frame):
    with pytest.raises(DataError, match=r"variable 'school' not found.*grouping variable"):
        fit("y ~ x + (1 | school)", frame)


def test_a_single_group(frame):
    with pytest.raises(DataError, match="'g' has a single group"):
        fit("y ~ x + (1 | g)", frame.assign(g=1))


def test_nothing_left_after_dropping_missing_values(frame):
    with pytest.raises(DataError, match="no observations left after dropping 200"):
        fit("y ~ x + (1 | g)", frame.assign(x=np.nan))


def test_missing_values_are_dropped_and_reported(frame, capsys):
    data = frame.copy()
    data.loc[:4, "x"] = np.nan
    data.loc[10, "y"] = np.nan
    res = mg.glmm("y ~ x + (1 | g)", data, nolog=True)
    out = capsys.readouterr().out
    assert "note: 6 observations dropped because of missing values (y 1, x 5)" in out
    assert res.nobs == 194


def test_text_column_holding_numbers(frame):
    with pytest.raises(DataError, match="variable 'x' is text holding numbers"):
        fit("y ~ x + (1 | g)", frame.assign(x=frame["x"].astype(str)))


def test_text_outcome(frame):
    with pytest.raises(DataError, match="outcome 'y' is text"):
        fit("y ~ x + (1 | g)", frame.assign(y=frame["y"].map({0: "no", 1: "yes"})))


def test_collinear_columns_are_dropped_with_a_note(frame):
    res = fit("y ~ x + w + (1 | g)", frame)
    assert list(res.params.index) == ["x", "_cons"]
    assert "note: w omitted because of collinearity" in res.notes
    text = str(res.summary())
    assert "           w |          0  (omitted)" in text


def test_variance_estimated_at_zero_is_reported_as_zero(frame):
    # exactly half of each cluster's outcomes are 1: no between-cluster variation at all
    data = frame.assign(y=np.tile([1, 0], 100), x=np.tile(np.linspace(-1, 1, 10), 20))
    res = fit("y ~ x + (1 | g)", data)
    comp = res.varcomp()[0]
    assert comp.estimate == 0.0
    assert np.isnan(comp.se)
    assert any("var(_cons) estimated at zero" in note for note in res.notes)
    assert res.lr_test.stat == pytest.approx(0.0, abs=1e-6)
    assert res.lr_test.p == 1.0
    assert np.all(np.isfinite(res.bse))


def test_bad_options(frame):
    with pytest.raises(MixedGLMError, match="nagq must be a positive integer"):
        fit("y ~ x + (1 | g)", frame, nagq=0)
    with pytest.raises(MixedGLMError, match="unknown family 'poison'"):
        fit("y ~ x + (1 | g)", frame, family="poison")
    with pytest.raises(MixedGLMError, match="link 'log' is not available for family 'binomial'"):
        fit("y ~ x + (1 | g)", frame, link="log")
    with pytest.raises(MixedGLMError, match="unknown integration method"):
        fit("y ~ x + (1 | g)", frame, method="ghermite")


def test_no_random_effect_term(frame):
    with pytest.raises(FormulaError, match="no random-effect term"):
        fit("y ~ x", frame)


def test_exposure_must_be_positive(frame):
    with pytest.raises(DataError, match="exposure variable 'x' must be positive"):
        fit("count ~ w + (1 | g)", frame, family="poisson", exposure="x")


def test_binomial_trials_checked(frame):
    data = frame.assign(n=frame["count"] // 2)
    with pytest.raises(DataError, match="between 0 and the number of trials"):
        fit("count ~ x + (1 | g)", data, trials="n")
