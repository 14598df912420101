"""Simulated data recover their parameters, the dispersion, shape and cut points included,
with random intercepts and with random slopes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg

N_GROUPS, N_EACH = 150, 12
BETA = (0.5, 0.3)  # _cons, x
SD_U = 0.6


def simulate(family: str, seed: int, sd_slope: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(N_GROUPS), N_EACH)
    x = rng.normal(size=g.size)
    u = rng.normal(scale=SD_U, size=N_GROUPS)[g] + rng.normal(scale=sd_slope, size=N_GROUPS)[g] * x
    eta = BETA[0] + BETA[1] * x + u
    mu = np.exp(eta)
    if family == "nb2":  # alpha = 0.7: a gamma-Poisson mixture
        y = rng.poisson(mu * rng.gamma(1 / 0.7, 0.7, g.size))
    elif family == "nb1":  # delta = 1.5: size mu / delta, p = 1 / (1 + delta)
        y = rng.negative_binomial(mu / 1.5, 1 / 2.5)
    elif family == "gamma":  # shape 4, s = 1/4
        y = rng.gamma(4.0, mu / 4.0)
    else:  # ordinal logit, no constant: cut points -1, 0.5, 2
        y = np.searchsorted([-1.0, 0.5, 2.0], eta - BETA[0] + rng.logistic(size=g.size)) + 1
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": g})


def _within(res, name: str, truth: float, k: float = 4.0) -> None:
    if name in res.params.index:
        est, se = res.params[name], res.bse[name]
    else:
        rows = {r[0]: r for r in res.ancillary()}
        rows.update({vc.name: (vc.name, vc.estimate, vc.se) for vc in res.varcomp()})
        _, est, se = rows[name][:3]
    assert abs(est - truth) < k * se, (name, est, se, truth)


@pytest.mark.parametrize(
    ("family", "options", "aux"),
    [
        ("nb2", {"family": "nbinomial"}, {"/lnalpha": np.log(0.7)}),
        ("nb1", {"family": "nbinomial", "dispersion": "constant"}, {"/lndelta": np.log(1.5)}),
        ("gamma", {"family": "gamma"}, {"/logs": np.log(0.25)}),
        ("ordinal", {"family": "ordinal"}, {"/cut1": -1.0, "/cut2": 0.5, "/cut3": 2.0}),
    ],
)
def test_random_intercept_models_recover_their_parameters(family, options, aux):
    res = mg.glmm("y ~ x + (1 | g)", simulate(family, seed=3), nolog=True, quiet=True, **options)
    assert res.converged
    _within(res, "x", BETA[1])
    if family != "ordinal":
        _within(res, "_cons", BETA[0])
    _within(res, "var(_cons)", SD_U**2)
    for name, truth in aux.items():
        _within(res, name, truth)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "options"),
    [("nb2", {"family": "nbinomial"}), ("ordinal", {"family": "ordinal", "link": "logit"})],
)
def test_random_slopes_recover_their_variances(family, options):
    data = simulate(family, seed=5, sd_slope=0.4)
    res = mg.glmm("y ~ x + (1 + x || g)", data, nolog=True, quiet=True, nagq=5, **options)
    assert res.converged and res.hessian_ok
    _within(res, "x", BETA[1])
    _within(res, "var(x)", 0.4**2)
    _within(res, "var(_cons)", SD_U**2)
    # Laplace gives nearly the same estimates on clusters of 12
    laplace = mg.glmm("y ~ x + (1 + x || g)", data, nolog=True, quiet=True, nagq=1, **options)
    assert laplace.params["x"] == pytest.approx(res.params["x"], abs=0.5 * res.bse["x"])


@pytest.mark.skipif(not hasattr(mg, "hybrid"), reason="the hybrid model is not in this tree")
def test_hybrid_passes_the_family_and_its_dispersion_through():
    data = simulate("nb1", seed=8)
    data["z"] = data["x"] + np.repeat(np.random.default_rng(1).normal(size=N_GROUPS), N_EACH)
    res = mg.hybrid("y ~ z", data, cluster="g", family="nbinomial constant", quiet=True)
    assert res.glmm.family.dispersion == "constant"
    assert [r[0] for r in res.glmm.ancillary()] == ["/lndelta", "delta"]
    ordinal = simulate("ordinal", seed=9).assign(z=data["z"])
    res = mg.hybrid("y ~ z", ordinal, cluster="g", family="ologit", quiet=True)
    assert "_cons" not in res.glmm.params.index
    assert [r[0] for r in res.glmm.ancillary()] == ["/cut1", "/cut2", "/cut3"]
