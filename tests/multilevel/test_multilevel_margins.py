"""margins() with several grouping factors, against brute-force integrals over every
factor's random effects on a product grid (independent of the one-dimensional reduction the
implementation uses), and against predict(fixedonly=True)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import mixedglm as mg
from mixedglm.engines.quadrature import gauss_hermite_rule


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n_top, per_top, per_mid = 30, 5, 4
    top = np.repeat(np.arange(n_top), per_top * per_mid)
    mid = np.repeat(np.arange(n_top * per_top), per_mid)
    n = top.size
    x = rng.normal(size=n)
    f = rng.integers(0, 3, n)
    item = rng.integers(0, 12, n)
    eta = -0.2 + 0.5 * x + 0.3 * (f == 1)
    eta += rng.normal(0, 0.8, n_top)[top] + rng.normal(0, 0.6, n_top * per_top)[mid]
    eta += rng.normal(0, 0.4, n_top)[top] * x + rng.normal(0, 0.5, 12)[item]
    y = rng.binomial(1, expit(eta))
    return pd.DataFrame({"top": top, "mid": mid, "item": item, "x": x, "f": f, "y": y})


def _brute_margin(res, data: pd.DataFrame, shift: float = 0.0, points: int = 24) -> float:
    """The mean over rows of E[expit(eta)] with every random effect on its own grid axis."""
    x = data["x"].to_numpy() + shift
    beta = res.params
    xb = beta["_cons"] + beta["x"] * x
    for level in (1, 2):
        if f"C(f)[{level}]" in beta:
            xb = xb + beta[f"C(f)[{level}]"] * (data["f"].to_numpy() == level)
    columns, blocks = [], []
    for f in res.design.factors:
        lam = f.structure.lam(res.theta(f.name))
        blocks.append(lam)
        columns += [np.ones_like(x) if c == "_cons" else x for c in f.structure.columns]
    Z = np.column_stack(columns)
    lam = np.zeros((Z.shape[1], Z.shape[1]))
    at = 0
    for block in blocks:
        q = block.shape[0]
        lam[at : at + q, at : at + q] = block
        at += q
    rule = gauss_hermite_rule(points, Z.shape[1])
    b = rule.nodes @ lam.T  # (K, q)
    mu = expit(xb[:, None] + Z @ b.T)
    return float(np.mean(mu @ np.exp(rule.log_weights)))


def test_nested_margin_and_average_marginal_effect_equal_brute_force(data):
    res = mg.glmm("y ~ x + C(f) + (1 | top/mid)", data, quiet=True)
    margin = res.margins().loc["_cons", "estimate"]
    assert margin == pytest.approx(_brute_margin(res, data), abs=1e-9)
    h = 1e-5
    ame = (_brute_margin(res, data, h) - _brute_margin(res, data, -h)) / (2 * h)
    assert res.margins(dydx="x").loc["x", "estimate"] == pytest.approx(ame, rel=1e-6)
    assert res.margins(dydx="x").loc["x", "se"] > 0


def test_crossed_random_slope_effect_equals_brute_force(data):
    """The slope on x makes d eta / d x random: its part through z Sigma z' is checked."""
    res = mg.glmm("y ~ x + (1 + x | top) + (1 | item)", data, method="laplace", quiet=True)
    h = 1e-5
    ame = (_brute_margin(res, data, h, 14) - _brute_margin(res, data, -h, 14)) / (2 * h)
    got = res.margins(dydx="x").loc["x", "estimate"]
    assert got == pytest.approx(ame, rel=1e-6)
    assert res.margins().loc["_cons", "estimate"] == pytest.approx(
        _brute_margin(res, data, 0.0, 14), abs=1e-8
    )


def test_fixed_only_margins_average_the_fixed_only_predictions(data):
    res = mg.glmm("y ~ x + C(f) + (1 | top) + (1 | item)", data, method="laplace", quiet=True)
    got = res.margins(marginal=False).loc["_cons", "estimate"]
    want = res.predict(kind="mu", fixedonly=True).mean()
    assert got == pytest.approx(want, abs=1e-12)
    contrast = res.margins(dydx="f", marginal=False)
    assert list(contrast.index) == ["C(f)[1]", "C(f)[2]"]
    assert np.all(contrast["se"] > 0)
