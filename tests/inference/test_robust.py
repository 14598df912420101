"""Robust and cluster-robust SEs against a brute-force sandwich: per-cluster scores by
finite differences of a (non-adaptive, 80-point) Gauss-Hermite likelihood, its Hessian by
finite differences too."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, gammaln, log_expit

import mixedglm as mg
from inference_data import fit
from mixedglm.cli import main
from mixedglm.errors import DataError, MixedGLMError

NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
WEIGHTS = WEIGHTS / WEIGHTS.sum()


def cluster_logliks(params: np.ndarray, X: np.ndarray, y: np.ndarray, g: np.ndarray):
    """Random-intercept logit: log of E_u[prod_i p(y_i | u)] per cluster, u ~ N(0, sd^2)."""
    beta, sd = params[:-1], params[-1]
    eta = (X @ beta)[:, None] + sd * NODES[None, :]
    ll = y[:, None] * log_expit(eta) + (1 - y[:, None]) * log_expit(-eta)
    per = np.zeros((g.max() + 1, NODES.size))
    np.add.at(per, g, ll)
    top = per.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.exp(per - top) @ WEIGHTS)


def brute_sandwich(f, params: np.ndarray, groups: np.ndarray | None = None):
    k, h = params.size, 1e-5
    scores = np.empty((f(params).size, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = h
        scores[:, j] = (f(params + e) - f(params - e)) / (2 * h)
    hess = np.empty((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = 1e-4
        up = np.empty(k)
        down = np.empty(k)
        for m in range(k):
            d = np.zeros(k)
            d[m] = h
            up[m] = (f(params + e + d).sum() - f(params + e - d).sum()) / (2 * h)
            down[m] = (f(params - e + d).sum() - f(params - e - d).sum()) / (2 * h)
        hess[:, j] = (up - down) / 2e-4
    hess = 0.5 * (hess + hess.T)
    if groups is not None:
        summed = np.zeros((groups.max() + 1, k))
        np.add.at(summed, groups, scores)
        scores = summed
    G = scores.shape[0]
    inv = np.linalg.inv(-hess)
    return inv @ scores.T @ scores @ inv * G / (G - 1), inv


def _arrays(res, data: pd.DataFrame):
    d = res.design
    return d.X, d.y, d.group_codes


def test_robust_glmm_equals_the_brute_force_sandwich(panel):
    res = fit("y ~ x + d + (1 | g)", panel, nagq=20, vce="robust")
    X, y, g = _arrays(res, panel)
    f = lambda p: cluster_logliks(p, X, y, g)  # noqa: E731
    brute, oim = brute_sandwich(f, res.params_all.copy())
    np.testing.assert_allclose(res.cov_all, brute, rtol=2e-4, atol=1e-10)
    model = fit("y ~ x + d + (1 | g)", panel, nagq=20)
    np.testing.assert_allclose(model.cov_all, oim, rtol=2e-4)
    assert res.vce.n_clusters == 50 and res.vce.variable == "g"
    # Wald test on the robust matrix; robust SEs of var(_cons) by the delta method
    b = res.params[["x", "d"]].to_numpy()
    V = brute[np.ix_([0, 1], [0, 1])]
    assert res.wald.stat == pytest.approx(float(b @ np.linalg.solve(V, b)), rel=5e-4)
    sd = res.params_all[-1]
    assert res.varcomp()[0].se == pytest.approx(2 * abs(sd) * np.sqrt(brute[-1, -1]), rel=2e-4)


def test_cluster_var_containing_the_groups(panel):
    res = fit("y ~ x + d + (1 | g)", panel, nagq=20, vce="cluster pair")
    X, y, g = _arrays(res, panel)
    groups = np.arange(50) // 2  # pair of each cluster code (codes are the sorted g values)
    brute, _ = brute_sandwich(lambda p: cluster_logliks(p, X, y, g), res.params_all.copy(), groups)
    np.testing.assert_allclose(res.cov_all, brute, rtol=2e-4, atol=1e-10)
    assert res.vce.note == "(Std. Err. adjusted for 25 clusters in pair)"
    text = str(res.summary())
    assert "(Std. Err. adjusted for 25 clusters in pair)" in text
    assert "|               Robust\n" in text
    assert "Log pseudolikelihood" in text and "LR test vs." not in text
    assert res.to_dict()["lr_test"] is None


def test_cluster_var_must_contain_the_groups(panel):
    finer = panel.assign(half=panel["g"] * 2 + (panel.index % 2))
    with pytest.raises(DataError, match="must be nested within the clusters of half"):
        fit("y ~ x + (1 | g)", finer, vce="cluster half")
    with pytest.raises(MixedGLMError, match="unknown vce"):
        fit("y ~ x + (1 | g)", panel, vce="bootstrap")
    with pytest.raises(DataError, match="'nope' not found"):
        fit("y ~ x + (1 | g)", panel, vce="cluster nope")


def _clogit_group_ll(beta, X, y, starts):
    """Exact conditional logit log-likelihood per group by enumerating subsets."""
    from itertools import combinations

    out = []
    for j in range(starts.size - 1):
        lo, hi = starts[j], starts[j + 1]
        eta = X[lo:hi] @ beta
        k = int(y[lo:hi].sum())
        terms = [eta[list(c)].sum() for c in combinations(range(hi - lo), k)]
        out.append(float(eta[y[lo:hi] == 1].sum() - np.log(np.sum(np.exp(terms)))))
    return np.array(out)


def test_clogit_robust_against_enumerated_likelihood():
    rng = np.random.default_rng(3)
    G, n = 40, 6
    g = np.repeat(np.arange(G), n)
    x = rng.normal(size=G * n)
    z = rng.normal(size=G * n) + 0.5 * rng.normal(size=G)[g]
    y = rng.binomial(1, expit(0.8 * x - 0.5 * z + rng.normal(size=G)[g]))
    data = pd.DataFrame({"y": y, "x": x, "z": z, "g": g, "pair": g // 4})
    res = mg.clogit("y ~ x + z", data, group="g", vce="robust", quiet=True, nolog=True)
    informative = data.groupby("g")["y"].transform(lambda s: 0 < s.sum() < len(s)).astype(bool)
    kept = data[informative]
    starts = np.r_[0, np.cumsum(kept.groupby("g").size().to_numpy())]
    X, yy = kept[["x", "z"]].to_numpy(), kept["y"].to_numpy()
    brute, _ = brute_sandwich(
        lambda b: _clogit_group_ll(b, X, yy, starts), res.params.to_numpy().copy()
    )
    np.testing.assert_allclose(res.cov_params.to_numpy(), brute, rtol=2e-4)
    assert res.vce.n_clusters == starts.size - 1
    text = str(res.summary())
    assert "Robust" in text and "Log pseudolikelihood" in text and "Wald chi2(2)" in text
    pairs = mg.clogit("y ~ x + z", data, group="g", vce="cluster pair", quiet=True, nolog=True)
    codes = kept.groupby("g")["pair"].first().to_numpy()
    codes = pd.factorize(codes, sort=True)[0]
    brute_p, _ = brute_sandwich(
        lambda b: _clogit_group_ll(b, X, yy, starts), res.params.to_numpy().copy(), codes
    )
    np.testing.assert_allclose(pairs.cov_params.to_numpy(), brute_p, rtol=2e-4)


def test_xtpoisson_fe_robust_against_closed_form_likelihood():
    rng = np.random.default_rng(5)
    G, n = 30, 5
    g = np.repeat(np.arange(G), n)
    x = rng.normal(size=G * n)
    y = rng.poisson(np.exp(0.3 + 0.5 * x + rng.normal(size=G)[g]))
    data = pd.DataFrame({"y": y, "x": x, "g": g})
    res = mg.xtpoisson_fe("y ~ x", data, group="g", vce="robust", quiet=True, nolog=True)
    kept = data[data.groupby("g")["y"].transform("sum") > 0]
    codes = pd.factorize(kept["g"], sort=True)[0]

    def f(b):
        eta = kept["x"].to_numpy() * b[0]
        yy = kept["y"].to_numpy()
        lse = np.log(np.bincount(codes, np.exp(eta)))
        tot = np.bincount(codes, yy)
        return (
            gammaln(tot + 1)
            - np.bincount(codes, gammaln(yy + 1))
            + np.bincount(codes, yy * eta)
            - tot * lse
        )

    brute, _ = brute_sandwich(f, res.params.to_numpy().copy())
    np.testing.assert_allclose(res.cov_params.to_numpy(), brute, rtol=2e-4)
    assert f(res.params.to_numpy()).sum() == pytest.approx(res.loglik, abs=1e-8)


def test_hybrid_passes_vce_on(panel, capsys, tmp_path):
    res = mg.hybrid("y ~ x", panel, cluster="g", family="binomial", vce="robust", quiet=True)
    assert res.glmm.vce is not None and res.glmm.vce.n_clusters == 50
    plain = mg.hybrid("y ~ x", panel, cluster="g", family="binomial", quiet=True)
    assert not np.allclose(res.bse.to_numpy(), plain.bse.to_numpy())
    path = tmp_path / "p.csv"
    panel.to_csv(path, index=False)
    code = main(["fit", str(path), "y ~ x + (1 | g)", "--nolog", "--vce", "cluster pair"])
    assert code == 0
    assert "(Std. Err. adjusted for 25 clusters in pair)" in capsys.readouterr().out
