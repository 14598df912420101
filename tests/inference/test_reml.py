"""REML for linear mixed models: lmer's fit of sleepstudy, and a dense-matrix REML
likelihood maximised independently."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from inference_data import fit
from mixedglm.cli import main
from mixedglm.errors import MixedGLMError

from refdata import REFERENCE, load_reference, load_reference_data


@pytest.fixture(scope="module")
def sleep():
    return load_reference_data("sleepstudy")


def test_reml_equals_lmer(sleep):
    ref = load_reference("sleep_lmer_reml_rs")
    res = fit("Reaction ~ Days + (Days | Subject)", sleep, family="gaussian", reml=True)
    order = ["_cons", "Days"]  # lmer: (Intercept), Days
    np.testing.assert_allclose(res.params[order], ref["fixef"]["estimate"], rtol=1e-6)
    np.testing.assert_allclose(res.bse[order], ref["fixef"]["se"], rtol=1e-4)
    assert res.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    vc = ref["varcomp"][0]
    idx = [res.structure.columns.index("_cons"), res.structure.columns.index("Days")]
    np.testing.assert_allclose(res.sigma[np.ix_(idx, idx)], vc["cov"], rtol=1e-4)
    assert np.exp(res.aux[0]) == pytest.approx(ref["sigma"], rel=1e-5)
    assert res.aic == pytest.approx(ref["AIC"], abs=1e-3)
    text = str(res.summary())
    assert text.startswith("Mixed-effects REML regression")
    assert "Log restricted-likelihood = -871.81414" in text


def _dense_reml(sleep):
    """Random-intercept REML with each subject's dense covariance block ``V_j = s_u^2 J +
    s_e^2 I``: -1/2 [log|V| + log|X'V^-1 X| + r'V^-1 r + (n - p) log 2 pi], maximised over
    (log s_u, log s_e) with Nelder-Mead."""
    blocks = []
    for _, part in sleep.groupby("Subject"):
        X = np.column_stack([np.ones(len(part)), part["Days"].to_numpy()])
        blocks.append((X, part["Reaction"].to_numpy()))
    n, p = len(sleep), 2

    def negll(x):
        xvx, xvy, logdet, inverses = np.zeros((p, p)), np.zeros(p), 0.0, []
        for X, y in blocks:
            m = len(y)
            V = np.exp(2 * x[0]) * np.ones((m, m)) + np.exp(2 * x[1]) * np.eye(m)
            Vi = np.linalg.inv(V)
            inverses.append(Vi)
            logdet += np.linalg.slogdet(V)[1]
            xvx += X.T @ Vi @ X
            xvy += X.T @ Vi @ y
        beta = np.linalg.solve(xvx, xvy)
        quad = sum(
            (y - X @ beta) @ Vi @ (y - X @ beta)
            for (X, y), Vi in zip(blocks, inverses, strict=False)
        )
        ll = logdet + np.linalg.slogdet(xvx)[1] + quad
        return 0.5 * (ll + (n - p) * np.log(2 * np.pi))

    opts = {"xatol": 1e-10, "fatol": 1e-12}
    sol = optimize.minimize(negll, [3.5, 3.5], method="Nelder-Mead", options=opts)
    return -sol.fun, np.exp(sol.x)


def test_random_intercept_reml_equals_dense_computation(sleep):
    ll, (sd_u, sd_e) = _dense_reml(sleep)
    res = fit("Reaction ~ Days + (1 | Subject)", sleep, family="gaussian", reml=True)
    assert res.loglik == pytest.approx(ll, abs=1e-6)
    assert abs(res.theta[0]) == pytest.approx(sd_u, rel=1e-4)
    assert np.exp(res.aux[0]) == pytest.approx(sd_e, rel=1e-4)
    # lmer's ML fit of the same model has a smaller SD (REML corrects ML's downward bias)
    assert abs(res.theta[0]) > load_reference("sleep_lmer_ml_ri")["varcomp"][0]["sd"]


def test_reml_refusals_and_cli(sleep, capsys):
    with pytest.raises(MixedGLMError, match="gaussian"):
        fit("Reaction ~ Days + (1 | Subject)", sleep.assign(Reaction=1), reml=True)
    with pytest.raises(MixedGLMError, match="not available with reml"):
        fit("Reaction ~ Days + (1 | Subject)", sleep, family="gaussian", reml=True, vce="robust")
    with pytest.raises(MixedGLMError, match="weights are not available"):
        fit(
            "Reaction ~ Days + (1 | Subject)",
            sleep.assign(w=2),
            family="gaussian",
            reml=True,
            group_weights={"Subject": "w"},
        )
    data = str(REFERENCE / "data" / "sleepstudy.csv")
    args = ["fit", data, "Reaction ~ Days + (1 | Subject)", "--family", "gaussian", "--reml"]
    assert main([*args, "--nolog"]) == 0
    assert "Mixed-effects REML regression" in capsys.readouterr().out


def test_variance_standard_errors_do_not_depend_on_the_differencing_step(sleep):
    """The variances' Hessian is extrapolated from two central differences: the standard
    errors are those of twice the steps to 1e-4, not moved by the rounding of the
    log-likelihood (a single central difference at 1e-4 was off by about 0.2%)."""
    from mixedglm.models import reml

    res = fit("Reaction ~ Days + (1 + Days | Subject)", sleep, family="gaussian", reml=True)
    cp = reml.CrossProducts(res.design)
    t = res.structure.n_theta
    x = res.params_all[-(t + 1) :]

    def f(z):
        return reml._unprofiled(cp, res.structure, z)

    larger = (4.0 * reml._hessian(f, x, 2e-3) - reml._hessian(f, x, 4e-3)) / 3.0
    want = np.sqrt(np.diag(np.linalg.inv(-larger)))
    np.testing.assert_allclose(np.sqrt(np.diag(res.cov_all))[-(t + 1) :], want, rtol=1e-4)
