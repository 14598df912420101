"""Hybrid and CRE fits: equal to glmm() on hand-made columns, to each other, to the
within estimator in the linear case; random slopes, families, tests, JSON, messages."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedglm as mg
from mixedglm.errors import FormulaError, MixedGLMError


def hand_built(frame: pd.DataFrame, y: str, use: list[str], other: list[str], cre=False):
    """W__/B__/R__ (or W__/D__) columns made with pandas, on the rows without missing values."""
    sample = frame.dropna(subset=[y, "g", *use, *other])
    out = pd.DataFrame({y: sample[y], "g": sample["g"]})
    for v in sorted(other):
        out[f"R__{v}"] = sample[v]
    means = sample.groupby("g")[use].transform("mean")
    for v in use:
        out[f"W__{v}"] = sample[v] if cre else sample[v] - means[v]
    for v in use:
        out[f"{'D' if cre else 'B'}__{v}"] = means[v]
    return out


def fit_hybrid(formula, data, **kw):
    return mg.hybrid(formula, data, cluster="g", quiet=True, **kw)


@pytest.fixture(scope="module")
def logit_pair(panel):
    res = fit_hybrid("yb ~ x1 + x2 + z", panel, use=["x1", "x2"], family="binomial")
    cre = fit_hybrid("yb ~ x1 x2 z", panel, use=["x1", "x2"], family="binomial", cre=True)
    return res, cre


def test_hybrid_equals_glmm_on_hand_built_columns(panel, logit_pair):
    res, _ = logit_pair
    data = hand_built(panel, "yb", ["x1", "x2"], ["z"])
    formula = "yb ~ R__z + W__x1 + W__x2 + B__x1 + B__x2 + (1 | g)"
    ref = mg.glmm(formula, data, family="binomial", nolog=True, quiet=True)
    assert list(res.params.index) == list(ref.params.index)
    np.testing.assert_allclose(res.params, ref.params, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-8)
    assert res.loglik == pytest.approx(ref.loglik, rel=1e-12)
    assert res.varcomp()[0].estimate == pytest.approx(ref.varcomp()[0].estimate, rel=1e-8)
    assert res.nobs == len(data) and res.n_groups == data["g"].nunique()
    assert res.glmm.family.name == "bernoulli" and res.title.startswith("Hybrid model.")
    assert res.title == "Hybrid model. Family: binomial. Link: logit."


def test_cre_is_a_reparameterisation_of_the_hybrid_model(panel, logit_pair):
    res, cre = logit_pair
    data = hand_built(panel, "yb", ["x1", "x2"], ["z"], cre=True)
    ref = mg.glmm(
        "yb ~ R__z + W__x1 + W__x2 + D__x1 + D__x2 + (1 | g)",
        data,
        family="binomial",
        nolog=True,
        quiet=True,
    )
    np.testing.assert_allclose(cre.params, ref.params, rtol=1e-8, atol=1e-10)
    assert cre.loglik == pytest.approx(res.loglik, abs=1e-6)
    for v in ("x1", "x2"):
        b, w = res.params[f"B__{v}"], res.params[f"W__{v}"]
        assert cre.params[f"D__{v}"] == pytest.approx(b - w, abs=1e-6)
        assert cre.params[f"W__{v}"] == pytest.approx(w, abs=1e-6)
    assert cre.params["R__z"] == pytest.approx(res.params["R__z"], abs=1e-6)
    assert cre.title == "Correlated random effects model. Family: binomial. Link: logit."
    # the tests of the random-effects assumption are the same hypotheses
    np.testing.assert_allclose(cre.tests()["chi2"], res.tests()["chi2"], rtol=1e-4)


def test_linear_within_effects_equal_the_fixed_effects_estimator(panel):
    res = fit_hybrid("y ~ x1 + x2 + z", panel, use=["x1", "x2"])  # gaussian is the default
    assert res.title == "Hybrid model. Family: gaussian. Link: identity."
    sample = panel.dropna(subset=["y", "x1", "x2", "z"])
    demeaned = sample[["y", "x1", "x2"]] - sample.groupby("g")[["y", "x1", "x2"]].transform("mean")
    X = demeaned[["x1", "x2"]].to_numpy()
    beta_fe = np.linalg.lstsq(X, demeaned["y"].to_numpy(), rcond=None)[0]
    np.testing.assert_allclose(res.params[["W__x1", "W__x2"]], beta_fe, rtol=1e-8)
    # and the between effects differ from them (x1 is correlated with the cluster effect)
    assert abs(res.params["B__x1"] - res.params["W__x1"]) > 5 * res.bse["B__x1"] * 0.1
    assert [r.name for r in res.varcomp()] == ["var(_cons)", "var(e)"]


def test_tests_against_a_hand_computation(logit_pair):
    res, cre = logit_pair
    b, V = res.params, res.cov_params
    names = list(b.index)
    rows = []
    for v in ("x1", "x2"):
        r = np.zeros(len(names))
        r[names.index(f"B__{v}")] = 1.0
        r[names.index(f"W__{v}")] = -1.0
        chi2 = (r @ b) ** 2 / (r @ V.to_numpy() @ r)
        got = res.tests().loc[v]
        assert got["chi2"] == pytest.approx(chi2, rel=1e-10)
        assert got["df"] == 1
        assert got["p"] == pytest.approx(stats.chi2.sf(chi2, 1), rel=1e-10)
        assert got["hypothesis"] == f"_b[B__{v}] = _b[W__{v}]"
        rows.append(r)
    R = np.array(rows)
    d = R @ b.to_numpy()
    joint = d @ np.linalg.solve(R @ V.to_numpy() @ R.T, d)
    assert res.tests().loc["joint", "chi2"] == pytest.approx(joint, rel=1e-10)
    assert res.tests().loc["joint", "df"] == 2
    # CRE: D__x = 0
    bc, Vc = cre.params, cre.cov_params
    for v in ("x1", "x2"):
        z2 = bc[f"D__{v}"] ** 2 / Vc.loc[f"D__{v}", f"D__{v}"]
        assert cre.tests().loc[v, "chi2"] == pytest.approx(z2, rel=1e-10)
        assert cre.tests().loc[v, "hypothesis"] == f"_b[D__{v}] = 0"
    text = res.test_text().splitlines()
    assert text[0] == "Tests of the random effects assumption:"
    assert text[1] == f"  _b[B__x1] = _b[W__x1]; p-value: {res.tests().loc['x1', 'p']:.4f}"
    assert text[-1].startswith("Joint test (all B__ = W__): chi2(2) = ")


def test_random_slope_on_the_within_column(panel):
    kw = {"family": "binomial", "nagq": 3, "use": ["x1", "x2"], "randomslope": ["x1"]}
    res = fit_hybrid("yb ~ x1 + x2", panel, **kw)
    assert res.glmm.structure.columns == ("_cons", "W__x1")
    assert res.glmm.structure.kind == "independent"
    data = hand_built(panel, "yb", ["x1", "x2"], [])
    ref = mg.glmm(
        "yb ~ W__x1 + W__x2 + B__x1 + B__x2 + (1 + W__x1 || g)",
        data,
        family="binomial",
        nagq=3,
        nolog=True,
        quiet=True,
    )
    np.testing.assert_allclose(res.params, ref.params, rtol=1e-8, atol=1e-10)
    assert res.loglik == pytest.approx(ref.loglik, rel=1e-12)
    table = res.table()
    assert "|         var(W__x1[g])|" in table
    assert "|         var(_cons[g])|" in table
    un = fit_hybrid("yb ~ x1 + x2", panel, cov="unstructured", **kw)
    assert "|cov(W__x1[g],_cons[g])|" in un.table()
    assert un.loglik >= res.loglik - 1e-6


def test_random_slope_on_an_undecomposed_variable_and_errors(panel):
    with pytest.raises(MixedGLMError, match="'w' is not a covariate of the hybrid model"):
        fit_hybrid("yb ~ x1 + x2", panel, family="binomial", randomslope=["w"])
    with pytest.raises(MixedGLMError, match="R__z"):
        # z is constant within clusters: no slope can be estimated on it
        fit_hybrid("yb ~ x1 + z", panel, family="binomial", use=["x1"], randomslope="z")


def test_nonlinearities_fit_and_test_jointly_per_variable(panel):
    res = fit_hybrid("yc ~ x1 + x2", panel, family="poisson", nonlinearities="quadratic", nagq=3)
    assert res.title == "Hybrid model. Family: poisson. Link: log."
    assert list(res.params.index) == [
        "W__x1",
        "W__x2",
        "B__x1",
        "B__x2",
        "B2__x1",
        "B2__x2",
        "_cons",
    ]
    tests = res.tests()
    assert tests.loc["x1", "df"] == 2
    assert tests.loc["x1", "hypothesis"] == "_b[B__x1] = _b[W__x1], _b[B2__x1] = 0"
    assert tests.loc["joint", "df"] == 4


def test_skipped_variables_are_reported_and_quiet_silences_them(panel, capsys):
    mg.hybrid("y ~ x1 + z", panel, cluster="g", nagq=3)
    out = capsys.readouterr().out
    assert "The variable 'z' does not vary sufficiently within clusters" in out
    assert "note: 1 observation dropped because of missing values (y 1)" in out
    mg.hybrid("y ~ x1 + z", panel, cluster="g", nagq=3, quiet=True)
    assert capsys.readouterr().out == ""


def test_json_document(logit_pair):
    res, _ = logit_pair
    doc = json.loads(json.dumps(res.to_dict()))
    assert doc["model"] == "hybrid"
    assert doc["depvar"] == "yb"
    assert doc["hybrid"]["within"] == ["W__x1", "W__x2"]
    assert doc["hybrid"]["residual"] == ["R__z"]
    assert [t["variable"] for t in doc["tests"]] == ["x1", "x2", "joint"]
    assert doc["tests"][0]["chi2"] == pytest.approx(res.tests().loc["x1", "chi2"])
    assert doc["coef"][0]["term"] == "R__z"


def test_family_and_formula_errors_come_from_the_usual_places(panel):
    with pytest.raises(MixedGLMError, match="tweedie"):
        fit_hybrid("y ~ x1", panel, family="tweedie")
    with pytest.raises(FormulaError):
        fit_hybrid("y ~ x1 + (1 | g)", panel)
    with pytest.raises(MixedGLMError, match="cluster="):
        mg.hybrid("y ~ x1", panel, cluster="")


def test_exposure_is_carried_through(panel):
    data = panel.assign(t=np.linspace(1.0, 3.0, len(panel)))
    res = fit_hybrid("yc ~ x1", data, family="poisson", exposure="t", nagq=3)
    sample = data.dropna(subset=["yc", "x1", "t"])
    ref = mg.glmm(
        "yc ~ W__x1 + B__x1 + (1 | g)",
        hand_built(sample, "yc", ["x1"], []).assign(t=sample["t"]),
        family="poisson",
        exposure="t",
        nagq=3,
        nolog=True,
        quiet=True,
    )
    np.testing.assert_allclose(res.params, ref.params, rtol=1e-8)
