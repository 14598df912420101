"""lme4 formula idioms: variables inside stateful transforms, cbind(), offset()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.errors import DataError, FormulaError
from mixedglm.formula.idioms import expression_names, formula_variables

from refdata import load_reference, load_reference_data


def test_variables_inside_transforms_are_found():
    data = pd.DataFrame({c: [1.0, 2.0] for c in ("a", "b", "c", "d", "e", "f", "z")})
    expr = "scale(a) + poly(b, 2) + bs(c, df=3) + center(d) + np.log(e) + C(f) + I(z**2)"
    assert formula_variables(expr, data, "fixed part") == ["a", "b", "c", "d", "e", "f", "z"]
    assert sorted(expression_names("np.log(x + y) * scale(w, ddof=1)")) == ["w", "x", "y"]


def test_an_unknown_variable_inside_a_transform_is_named():
    data = pd.DataFrame({"age": [1.0], "x2": [2.0]})
    with pytest.raises(DataError, match=r"variable 'agee' not found.*did you mean 'age'"):
        formula_variables("x2 + scale(agee)", data, "fixed part")


def test_listwise_deletion_sees_variables_inside_scale(panel):
    data = panel.copy()
    data.loc[[4, 9], "x"] = np.nan
    res = mg.glmm("y ~ scale(x) + (1 | g)", data, nolog=True, quiet=True)
    assert res.nobs == len(data) - 2
    assert res.design.notes[0] == "note: 2 observations dropped because of missing values (x 2)"


def test_scale_equals_standardising_by_hand_and_predicts_with_the_fitted_moments(panel):
    data = panel.copy()
    data.loc[0, "x"] = np.nan
    res = mg.glmm("y ~ scale(x) + center(t) + (1 | g)", data, nolog=True, quiet=True)
    kept = data.dropna()
    mean, sd = kept["x"].mean(), kept["x"].std()
    by_hand = data.assign(xs=(data["x"] - mean) / sd, tc=data["t"] - kept["t"].mean())
    ref = mg.glmm("y ~ xs + tc + (1 | g)", by_hand, nolog=True, quiet=True)
    np.testing.assert_allclose(res.params.to_numpy(), ref.params.to_numpy(), rtol=1e-8)
    assert list(res.params.index) == ["scale(x)", "center(t)", "_cons"]
    # new data: one row, whose own mean/SD would be meaningless; the fit's are used
    new = data.iloc[[5]]
    xb = res.predict(new, kind="xb").iloc[0]
    b = res.params
    expected = b["scale(x)"] * (new["x"].iloc[0] - mean) / sd + b["_cons"]
    expected += b["center(t)"] * (new["t"].iloc[0] - kept["t"].mean())
    assert xb == pytest.approx(expected, rel=1e-10)


def test_poly_and_bs_fit_and_predict_on_new_data(panel):
    res = mg.glmm("y ~ poly(x, 2) + bs(t, df=3) + (1 | g)", panel, nolog=True, quiet=True)
    assert [n for n in res.params.index if n.startswith("poly")] == [
        "poly(x, 2)[1]",
        "poly(x, 2)[2]",
    ]
    assert sum(n.startswith("bs(t") for n in res.params.index) == 3
    fitted = res.predict(kind="xb")
    again = res.predict(panel.iloc[10:20], kind="xb")
    np.testing.assert_allclose(again.to_numpy(), fitted.iloc[10:20].to_numpy(), rtol=1e-10)


def test_offset_in_the_formula_reproduces_lme4_on_mmmec():
    """glmer(deaths ~ uvb + offset(log(expected)) + (1 | region)), the R formula verbatim."""
    ref = load_reference("mmmec_glmer_offset_ri_laplace_tight")
    data = load_reference_data("mmmec")
    res = mg.glmm(ref["formula"], data, family="poisson", nagq=1, nolog=True, quiet=True)
    assert res.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    ours = res.params[["_cons", "uvb"]].to_numpy()
    np.testing.assert_allclose(ours, ref["fixef"]["estimate"], rtol=1e-5)
    np.testing.assert_allclose(res.bse[["_cons", "uvb"]], ref["fixef"]["se"], rtol=1e-4)
    expo = mg.glmm(
        "deaths ~ uvb + (1 | region)",
        data,
        family="poisson",
        nagq=1,
        exposure="expected",
        nolog=True,
        quiet=True,
    )
    np.testing.assert_allclose(res.params.to_numpy(), expo.params.to_numpy(), rtol=1e-10)
    # the offset expression is evaluated again on new data
    new = data.iloc[:5]
    np.testing.assert_allclose(res.predict(new, kind="xb"), expo.predict(new, kind="xb"))
    assert "log(expected)" in str(res.summary())


def test_cbind_reproduces_lme4_on_cbpp():
    """glmer(cbind(incidence, size - incidence) ~ period + (1 | herd)), verbatim."""
    ref = load_reference("cbpp_glmer_laplace_tight")
    data = load_reference_data("cbpp").astype({"period": "category"})
    res = mg.glmm(ref["formula"], data, nagq=1, nolog=True, quiet=True)
    assert res.family.name == "binomial"
    assert res.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    ours = res.params[["_cons", "period[2]", "period[3]", "period[4]"]].to_numpy()
    np.testing.assert_allclose(ours, ref["fixef"]["estimate"], rtol=1e-5)
    np.testing.assert_allclose(
        res.design.trials, data["size"].to_numpy()[res.design.source_positions]
    )
    with_trials = mg.glmm(
        "incidence ~ period + (1 | herd)", data, trials="size", nagq=1, nolog=True, quiet=True
    )
    np.testing.assert_allclose(res.params.to_numpy(), with_trials.params.to_numpy(), rtol=1e-10)


def test_cbind_and_offset_errors(panel):
    with pytest.raises(FormulaError, match=r"cbind.*binomial"):
        mg.glmm("cbind(y, count) ~ x + (1 | g)", panel, family="poisson", quiet=True)
    with pytest.raises(FormulaError, match="takes two columns"):
        mg.glmm("cbind(y) ~ x + (1 | g)", panel, quiet=True)
    with pytest.raises(DataError, match=r"variable 'tt'.*not found.*did you mean 't'"):
        mg.glmm("count ~ x + offset(log(tt)) + (1 | g)", panel, family="poisson", quiet=True)
