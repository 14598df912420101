"""Exponentiated coefficients (or / irr / eform) and Wald tests of linear hypotheses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import mixedglm as mg
from inference_data import fit
from mixedglm.cli import main
from mixedglm.errors import MixedGLMError


def test_to_frame_eform_is_the_delta_method_on_the_fixed_part_only(ri_fit):
    plain = ri_fit.to_frame()
    odds = ri_fit.to_frame(eform=True)
    fixed = plain["part"] == "fixed"
    b = plain.loc[fixed, "estimate"]
    np.testing.assert_allclose(odds.loc[fixed, "estimate"], np.exp(b), rtol=1e-14)
    np.testing.assert_allclose(odds.loc[fixed, "se"], np.exp(b) * plain.loc[fixed, "se"])
    np.testing.assert_allclose(odds.loc[fixed, "ci_low"], np.exp(plain.loc[fixed, "ci_low"]))
    np.testing.assert_allclose(odds.loc[fixed, "z"], plain.loc[fixed, "z"])
    # variance components unchanged
    np.testing.assert_array_equal(
        odds.loc[~fixed, "estimate"].to_numpy(), plain.loc[~fixed, "estimate"].to_numpy()
    )


def test_summary_titles_as_stata(ri_fit):
    text = str(ri_fit.summary(eform=True))
    assert "| Odds Ratio   Std. Err." in text
    cons = next(line for line in text.splitlines() if line.strip().startswith("_cons"))
    assert f"{np.exp(ri_fit.params['_cons']):.6f}"[:6] in cons.replace(" .", " 0.")
    assert "Note: _cons estimates baseline odds (conditional on zero random effects)." in text
    assert "|         OR   Std. Err." in str(ri_fit.summary(style="xt", eform="or"))
    assert "exp(b)" in str(ri_fit.summary(eform="eform"))


def test_irr_for_counts_and_refusals(panel):
    counts = panel.assign(k=(panel["x"] > 0).astype(int) + panel["y"])
    res = fit("k ~ x + (1 | g)", counts, family="poisson")
    assert "|        IRR   Std. Err." in str(res.summary(eform=True))
    assert "baseline incidence rate" in str(res.summary(eform="irr"))
    with pytest.raises(MixedGLMError, match="odds ratios"):
        res.summary(eform="or")
    probit = fit("y ~ x + (1 | g)", panel, link="probit")
    with pytest.raises(MixedGLMError, match="logit link"):
        probit.to_frame(eform="or")
    assert "exp(b)" in str(probit.summary(eform=True))


def test_cli_or_flag(capsys, tmp_path, panel):
    path = tmp_path / "panel.csv"
    panel.to_csv(path, index=False)
    assert main(["fit", str(path), "y ~ x + d + (1 | g)", "--nolog", "--or"]) == 0
    assert "Odds Ratio" in capsys.readouterr().out


def test_wald_test_of_linear_hypotheses(ri_fit):
    b = ri_fit.params.to_numpy()
    V = ri_fit.cov_params.to_numpy()
    names = list(ri_fit.params.index)
    R = np.zeros((2, len(b)))
    R[0, names.index("x")], R[0, names.index("d")] = 1.0, -1.0
    R[1, names.index("_cons")] = 2.0
    r = np.array([0.0, 0.5])
    diff = R @ b - r
    chi2 = float(diff @ np.linalg.solve(R @ V @ R.T, diff))
    res = ri_fit.test("x = d", "2*_cons = 0.5")
    assert res.df == 2
    assert res.stat == pytest.approx(chi2, rel=1e-12)
    assert res.p == pytest.approx(stats.chi2.sf(chi2, 2), rel=1e-12)
    assert " ( 1)  [y]x - [y]d = 0" in str(res)
    same = ri_fit.test("x - d + 0 = 0", "_b[_cons]*2 - 0.5 = 0")
    assert same.stat == pytest.approx(chi2, rel=1e-12)


def test_wald_test_list_form_and_errors(ri_fit):
    idx = ["x", "d"]
    b = ri_fit.params[idx].to_numpy()
    V = ri_fit.cov_params.loc[idx, idx].to_numpy()
    res = ri_fit.test(idx)
    assert res.stat == pytest.approx(float(b @ np.linalg.solve(V, b)), rel=1e-12)
    assert res.df == 2
    dup = ri_fit.test("x = 0", "2*x = 0")  # the second is the first again
    assert dup.df == 1 and dup.dropped == (2,)
    with pytest.raises(MixedGLMError, match="'xx' in hypothesis"):
        ri_fit.test("xx = 0")
    with pytest.raises(MixedGLMError, match="not linear"):
        ri_fit.test("x*d = 0")


def test_conditional_results_have_test(panel):
    res = mg.clogit("y ~ x + d", panel, group="g", quiet=True, nolog=True)
    b, V = res.params["x"], res.cov_params.loc["x", "x"]
    assert res.test("x").stat == pytest.approx(b**2 / V, rel=1e-12)
