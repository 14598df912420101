"""fittedvalues, residuals, fixef, ranef, varcorr, nobs, df_model against lme4 and by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

import mixedglm as mg
from mixedglm.errors import MixedGLMError

from refdata import load_reference, load_reference_data


@pytest.fixture(scope="module")
def cbpp():
    ref = load_reference("cbpp_glmer_laplace_tight")
    data = load_reference_data("cbpp").astype({"period": "category"})
    # shuffled rows: every accessor must come back in the data's row order
    data = data.sample(frac=1.0, random_state=1)
    return ref, data, mg.glmm(ref["formula"], data, nagq=1, nolog=True, quiet=True)


def test_cbpp_fitted_values_and_residuals_match_lme4(cbpp):
    ref, data, res = cbpp
    fitted = res.fittedvalues
    assert fitted.index.equals(data.index)
    u = res.ranef()["_cons"].reindex(data["herd"]).to_numpy()
    eta = res.predict(kind="xb").to_numpy() + u
    np.testing.assert_allclose(fitted.to_numpy(), special.expit(eta), rtol=1e-12)
    prop = (data["incidence"] / data["size"]).to_numpy()
    np.testing.assert_allclose(res.resid_response.to_numpy(), prop - fitted.to_numpy())
    pearson = (prop - fitted) * np.sqrt(data["size"] / (fitted * (1 - fitted)))
    np.testing.assert_allclose(res.resid_pearson.to_numpy(), pearson.to_numpy(), rtol=1e-12)
    # lme4's deviance() is the sum of squared deviance residuals at the conditional modes
    deviance = float(np.sum(res.resid_deviance.to_numpy() ** 2))
    assert deviance == pytest.approx(ref["deviance_lme4"], rel=1e-5)


def test_cbpp_ranef_fixef_varcorr_match_lme4(cbpp):
    ref, _, res = cbpp
    modes = ref["ranef_first5"]["herd"]
    ranef = res.ranef()
    assert list(ranef.columns) == ["_cons"] and len(ranef) == 15
    ours = ranef.loc[[int(v) for v in modes["levels"]], "_cons"].to_numpy()
    np.testing.assert_allclose(ours, modes["modes"]["(Intercept)"], rtol=1e-4, atol=1e-6)
    assert res.fixef().equals(res.params)
    vc = res.varcorr()
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert vc.loc[0, "grp"] == "herd" and vc.loc[0, "var1"] == "_cons"
    assert vc.loc[0, "vcov"] == pytest.approx(ref["varcomp"][0]["variance"], rel=1e-4)
    assert vc.loc[0, "sdcor"] == pytest.approx(ref["varcomp"][0]["sd"], rel=1e-4)
    assert res.nobs == 56 and res.df_model == 3


@pytest.mark.slow
def test_sleepstudy_varcorr_and_ranef_match_lmer():
    ref = load_reference("sleep_lmer_ml_rs")
    data = load_reference_data("sleepstudy")
    res = mg.glmm(ref["formula"], data, family="gaussian", nagq=1, nolog=True, quiet=True)
    vc = res.varcorr()
    comp = ref["varcomp"][0]
    assert list(vc["var1"]) == ["_cons", "Days", "_cons", ""]
    assert list(vc["grp"]) == ["Subject", "Subject", "Subject", "Residual"]
    np.testing.assert_allclose(vc["vcov"][:2], comp["variance"], rtol=1e-4)
    np.testing.assert_allclose(vc["sdcor"][:2], comp["sd"], rtol=1e-4)
    assert vc.loc[2, "var2"] == "Days"
    assert vc.loc[2, "vcov"] == pytest.approx(comp["cov"][0][1], rel=1e-3)
    assert vc.loc[2, "sdcor"] == pytest.approx(comp["corr"][0][1], rel=1e-3)
    assert vc.loc[3, "sdcor"] == pytest.approx(ref["varcomp"][1]["sd"], rel=1e-4)
    modes = ref["ranef_first5"]["Subject"]
    ranef = res.ranef().loc[[int(v) for v in modes["levels"]]]
    np.testing.assert_allclose(ranef["_cons"], modes["modes"]["(Intercept)"], rtol=1e-3)
    np.testing.assert_allclose(ranef["Days"], modes["modes"]["Days"], rtol=1e-3)
    # gaussian: response = pearson = deviance residuals
    np.testing.assert_allclose(res.resid_pearson, res.resid_response)
    np.testing.assert_allclose(res.resid_deviance, res.resid_response, atol=1e-12)
    assert res.df_model == 1


def test_independent_slopes_have_no_covariance_row():
    data = load_reference_data("sleepstudy")
    res = mg.glmm(
        "Reaction ~ Days + (1 + Days || Subject)",
        data,
        family="gaussian",
        nagq=1,
        nolog=True,
        quiet=True,
    )
    assert list(res.varcorr()["var1"]) == ["_cons", "Days", ""]


def test_poisson_residuals_by_hand(panel):
    res = mg.glmm("count ~ x + (1 | g)", panel, family="poisson", nolog=True, quiet=True)
    mu = res.fittedvalues.to_numpy()
    y = panel["count"].to_numpy(dtype=float)
    np.testing.assert_allclose(res.resid_pearson, (y - mu) / np.sqrt(mu))
    dev = 2 * (special.xlogy(y, y / mu) - (y - mu))
    np.testing.assert_allclose(res.resid_deviance, np.sign(y - mu) * np.sqrt(dev))
    # the conditional mean uses the posterior means (Stata's predict, mu)
    assert res.fittedvalues.equals(res.predict(kind="mu").rename("fitted"))


def test_ordinal_fitted_values_are_refused():
    rng = np.random.default_rng(2)
    data = pd.DataFrame({"g": np.repeat(np.arange(20), 5), "x": rng.normal(size=100)})
    data["r"] = np.digitize(data["x"] + rng.normal(size=100), [-0.5, 0.5])
    res = mg.glmm("r ~ x + (1 | g)", data, family="ordinal", nolog=True, quiet=True)
    with pytest.raises(MixedGLMError, match="ordinal"):
        res.fittedvalues  # noqa: B018


def test_hybrid_results_delegate_the_accessors(panel):
    res = mg.hybrid("y ~ f", panel, use=["x"], cluster="g", family="binomial")
    assert res.fittedvalues.equals(res.glmm.fittedvalues)
    assert res.resid_pearson.equals(res.glmm.resid_pearson)
    assert res.ranef().equals(res.glmm.ranef()) and res.varcorr().equals(res.glmm.varcorr())
    assert res.fixef().equals(res.params) and res.df_model == 3 and res.nobs == len(panel)
