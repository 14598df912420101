"""res.margins() against the definition: each row's mean response integrated over the random
effects by quadrature (200-point Gauss-Hermite, checked against scipy's quad), derivatives
by differencing that definition, delta-method SEs with an independent numerical Jacobian."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import expit

from inference_data import fit
from mixedglm.cli import main
from mixedglm.errors import MixedGLMError
from mixedglm.report.margins import parse_margins_spec

FORMULA = "y ~ x + I(x**2) + d + C(f) + (1 | g)"


@pytest.fixture(scope="module")
def res(panel):
    return fit(FORMULA, panel, nagq=12)


GH_NODES, GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(200)
GH_WEIGHTS = GH_WEIGHTS / GH_WEIGHTS.sum()


def row_means(eta: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """E[expit(eta + sd z)], z ~ N(0, 1), per row: 200-point Gauss-Hermite (the library
    uses 30 points on its own grid)."""
    sd = np.broadcast_to(sd, eta.shape)
    return expit(eta[:, None] + sd[:, None] * GH_NODES[None, :]) @ GH_WEIGHTS


def test_row_means_is_the_integral():
    for e, s in ((0.3, 0.8), (-2.0, 2.5)):
        exact = integrate.quad(lambda z, e=e, s=s: expit(e + s * z) * stats.norm.pdf(z), -15, 15)
        assert row_means(np.array([e]), np.array([s]))[0] == pytest.approx(exact[0], rel=1e-12)


def linear(b: dict, x, d, f):
    return (
        b["_cons"]
        + b["x"] * x
        + b["I(x ** 2)"] * x**2
        + b["d"] * d
        + np.select([f == 1, f == 2], [b["C(f)[1]"], b["C(f)[2]"]], 0.0)
    )


def test_predictive_margin_and_fixedonly(res, panel):
    b = res.params.to_dict()
    sd = abs(res.theta[0])
    eta = linear(b, panel["x"].to_numpy(), panel["d"].to_numpy(), panel["f"].to_numpy())
    m = res.margins()
    assert m.index.tolist() == ["_cons"]
    assert m.loc["_cons", "estimate"] == pytest.approx(row_means(eta, sd).mean(), rel=1e-9)
    fixed = res.margins(marginal=False)
    assert fixed.loc["_cons", "estimate"] == pytest.approx(expit(eta).mean(), rel=1e-12)
    assert list(m.columns) == ["estimate", "se", "z", "p", "ci_low", "ci_high"]


def test_average_marginal_effects_match_the_definition(res, panel):
    b = res.params.to_dict()
    sd = abs(res.theta[0])
    x, d, f = (panel[c].to_numpy() for c in ("x", "d", "f"))
    h = 1e-4
    ame_x = np.mean(row_means(linear(b, x + h, d, f), sd) - row_means(linear(b, x - h, d, f), sd))
    ame_x /= 2 * h
    m = res.margins(dydx=["x", "d", "f"])
    assert m.loc["x", "estimate"] == pytest.approx(ame_x, rel=1e-6)
    # d is numeric 0/1 (not a factor here): a derivative, which for a linear index is the
    # average of expit' times b_d
    base = row_means(linear(b, x, np.zeros_like(d), f), sd)
    for level in (1, 2):
        change = row_means(linear(b, x, d, np.full_like(f, level)), sd) - row_means(
            linear(b, x, d, np.zeros_like(f)), sd
        )
        assert m.loc[f"C(f)[{level}]", "estimate"] == pytest.approx(change.mean(), rel=1e-8)
    assert base.size == len(panel)


def test_delta_method_standard_errors(res, panel):
    x, d, f = (panel[c].to_numpy() for c in ("x", "d", "f"))
    names = list(res.params.index)
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()

    def margin(p: np.ndarray) -> float:  # the predictive margin at x = 1 by 60-point GH
        b = dict(zip(names, p[:-1], strict=True))
        eta = linear(b, np.ones_like(x), d, f)
        return float(np.mean(expit(eta[:, None] + p[-1] * nodes[None, :]) @ weights))

    p0 = res.params_all.copy()
    jac = np.array([(margin(p0 + e) - margin(p0 - e)) / 2e-6 for e in np.eye(p0.size) * 1e-6])
    se = float(np.sqrt(jac @ res.cov_all @ jac))
    m = res.margins(at={"x": 1})
    assert m.loc[("x=1", "_cons"), "estimate"] == pytest.approx(margin(p0), rel=1e-9)
    assert m.loc[("x=1", "_cons"), "se"] == pytest.approx(se, rel=1e-5)
    z = m.loc[("x=1", "_cons"), "z"]
    assert m.loc[("x=1", "_cons"), "ci_low"] == pytest.approx(margin(p0) - 1.959964 * se, rel=1e-5)
    assert z == pytest.approx(margin(p0) / se, rel=1e-5)


@pytest.mark.slow
def test_over_and_random_slopes(panel):
    res = fit("y ~ x + (1 + x || g)", panel, nagq=7)
    b0, b1 = res.params["_cons"], res.params["x"]
    sds = dict(
        zip(res.structure.columns, np.abs(np.diag(res.structure.lam(res.theta))), strict=True)
    )
    s_cons, s_x = sds["_cons"], sds["x"]
    x, d = panel["x"].to_numpy(), panel["d"].to_numpy()

    def means(xv):
        return row_means(b0 + b1 * xv, np.sqrt(s_cons**2 + (s_x * xv) ** 2))

    h = 1e-4
    effect = (means(x + h) - means(x - h)) / (2 * h)
    m = res.margins(dydx="x", over="d")
    for level in (0, 1):
        assert m.loc[(level, "x"), "estimate"] == pytest.approx(effect[d == level].mean(), rel=1e-6)


def test_a_large_random_effect_sd_keeps_the_effects_exact():
    """sd(_cons) = 3.2: 30-point Gauss-Hermite, as before, was off by 3.8e-5 (relative) in
    the effect here (the logistic's poles limit it); the reference is scipy's adaptive quad
    per distinct row."""
    import pandas as pd

    import mixedglm as mg

    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(60), 8)
    x = np.round(rng.normal(size=g.size), 1)
    y = rng.binomial(1, expit(0.2 + 0.6 * x + rng.normal(0, 3.0, 60)[g]))
    res = mg.glmm("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), quiet=True)
    b0, b1 = res.params["_cons"], res.params["x"]
    sd = float(res.sd()["estimate"].iloc[0])
    assert sd > 2.0

    def mean(eta):
        return integrate.quad(
            lambda z: expit(eta + sd * z) * stats.norm.pdf(z), -12, 12, epsabs=1e-14, limit=200
        )[0]

    values, counts = np.unique(x, return_counts=True)
    h = 1e-5
    effect = [(mean(b0 + b1 * (v + h)) - mean(b0 + b1 * (v - h))) / (2 * h) for v in values]
    want = float(np.dot(effect, counts) / counts.sum())
    assert res.margins(dydx="x").loc["x", "estimate"] == pytest.approx(want, rel=1e-7)
    margin = float(np.dot([mean(b0 + b1 * v) for v in values], counts) / counts.sum())
    assert res.margins().loc["_cons", "estimate"] == pytest.approx(margin, rel=1e-9)


def test_margins_errors_and_cli(res, panel, capsys, tmp_path):
    with pytest.raises(MixedGLMError, match="'nope' is not in the data"):
        res.margins(dydx="nope")
    with pytest.raises(MixedGLMError, match="over variable"):
        res.margins(over="zz")
    assert parse_margins_spec("dydx(x d) at(x=1) over(g) predict(mu fixedonly)") == {
        "dydx": ["x", "d"],
        "at": {"x": 1},
        "over": "g",
        "marginal": False,
    }
    with pytest.raises(MixedGLMError, match="unknown margins option"):
        parse_margins_spec("eyex(x)")
    path = tmp_path / "p.csv"
    panel.to_csv(path, index=False)
    args = ["fit", str(path), "y ~ x + d + (1 | g)", "--nolog", "--margins", "dydx(x d)"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Average marginal effects" in out and "dy/dx w.r.t. : x d" in out
    assert "|            Delta-method\n" in out
    assert "|      dy/dx   Std. Err." in out
