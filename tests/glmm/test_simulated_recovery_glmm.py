"""Simulated data recover their parameters: bernoulli (logit, probit), binomial, Poisson and
gaussian random intercepts; two correlated random slopes; non-convergence is reported."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

import mixedglm as mg
from mixedglm.errors import ConvergenceWarning

BETA = (-0.4, 0.5, -0.3)  # _cons, x1, x2


def simulate(family: str, seed: int, n_groups: int = 200, n_each: int = 15) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), n_each)
    x1, x2 = rng.normal(size=g.size), rng.binomial(1, 0.4, g.size).astype(float)
    eta = BETA[0] + BETA[1] * x1 + BETA[2] * x2 + rng.normal(scale=0.8, size=n_groups)[g]
    trials = np.ones(g.size)
    if family == "logit":
        y = rng.binomial(1, special.expit(eta))
    elif family == "probit":
        y = rng.binomial(1, special.ndtr(eta))
    elif family == "binomial":
        trials = rng.integers(1, 8, g.size).astype(float)
        y = rng.binomial(trials.astype(int), special.expit(eta))
    elif family == "poisson":
        y = rng.poisson(np.exp(eta))
    else:
        y = eta + rng.normal(scale=1.5, size=g.size)
    return pd.DataFrame({"y": y.astype(float), "x1": x1, "x2": x2, "g": g, "n": trials})


@pytest.mark.parametrize(
    ("family", "options"),
    [
        ("logit", {}),
        ("probit", {"link": "probit"}),
        ("binomial", {"trials": "n"}),
        ("poisson", {"family": "poisson"}),
        ("gaussian", {"family": "gaussian"}),
    ],
)
def test_random_intercept_models_recover_their_parameters(family, options):
    res = mg.glmm(
        "y ~ x1 + x2 + (1 | g)", simulate(family, seed=11), nolog=True, quiet=True, **options
    )
    assert res.converged
    truth = {"x1": BETA[1], "x2": BETA[2], "_cons": BETA[0]}
    for name, value in truth.items():
        assert abs(res.params[name] - value) < 4 * res.bse[name], name
    comps = {vc.name: vc for vc in res.varcomp()}
    var = comps["var(_cons)"]
    assert abs(var.estimate - 0.64) < 4 * var.se
    if family == "gaussian":
        assert abs(comps["var(e)"].estimate - 2.25) < 4 * comps["var(e)"].se


def test_two_correlated_random_slopes_are_recovered():
    """q = 3 (constant and two slopes, unstructured): 7^3 = 343 points per cluster."""
    rng = np.random.default_rng(21)
    n_groups, n_each = 250, 20
    g = np.repeat(np.arange(n_groups), n_each)
    x1, x2 = rng.normal(size=g.size), rng.normal(size=g.size)
    sd = np.array([0.7, 0.5, 0.4])
    corr = np.array([[1.0, 0.4, 0.0], [0.4, 1.0, -0.3], [0.0, -0.3, 1.0]])
    cov = corr * np.outer(sd, sd)
    b = rng.multivariate_normal(np.zeros(3), cov, size=n_groups)[g]
    eta = -0.3 + 0.6 * x1 - 0.4 * x2 + b[:, 0] + b[:, 1] * x1 + b[:, 2] * x2
    data = pd.DataFrame({"y": rng.binomial(1, special.expit(eta)), "x1": x1, "x2": x2, "g": g})
    res = mg.glmm("y ~ x1 + x2 + (1 + x1 + x2 | g)", data, nagq=7, nolog=True, quiet=True)
    assert res.converged and res.hessian_ok
    for name, value in {"x1": 0.6, "x2": -0.4, "_cons": -0.3}.items():
        assert abs(res.params[name] - value) < 4 * res.bse[name], name
    comps = {vc.name: vc for vc in res.varcomp()}
    expected = {
        "var(x1)": cov[1, 1],
        "var(x2)": cov[2, 2],
        "var(_cons)": cov[0, 0],
        "cov(x1,_cons)": cov[0, 1],
        "cov(x1,x2)": cov[1, 2],
    }
    for name, value in expected.items():
        assert abs(comps[name].estimate - value) < 4 * comps[name].se, name
    assert {"sd(x1)", "sd(x2)", "sd(_cons)", "corr(x1,x2)"} <= set(res.sd().index)


def test_non_convergence_is_reported_not_hidden(contraception):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = mg.glmm(
            "c_use ~ urban + age + (1 | district)", contraception, maxiter=1, nolog=True, quiet=True
        )
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert messages and "max |gradient| =" in messages[0]
    assert res.converged is False
    assert json.loads(json.dumps(res.to_dict()))["converged"] is False


def test_json_carries_estat_sd(contraception):
    res = mg.glmm(
        "c_use ~ urban + age + (1 + urban | district)",
        contraception,
        nagq=1,
        nolog=True,
        quiet=True,
    )
    doc = res.to_dict()
    names = [row["name"] for row in doc["sd"]]
    assert names == ["sd(urban)", "sd(_cons)", "corr(urban,_cons)"]
    assert doc["sd"][0]["estimate"] == pytest.approx(np.sqrt(res.sigma[1, 1]))
