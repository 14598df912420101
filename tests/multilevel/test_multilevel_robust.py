"""vce='robust' and vce='cluster VAR' with nested grouping factors (Stata's ``melogit ...
|| comm: || mom:, vce(robust)``): the sandwich against one built from per-top-cluster scores
by central differences of the engine's per-cluster log-likelihoods (no analytic score)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.errors import MixedGLMError
from mixedglm.models.multilevel import MemoryEngines


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n_top, per_top, per_mid = 24, 4, 5
    top = np.repeat(np.arange(n_top), per_top * per_mid)
    mid = np.repeat(np.arange(n_top * per_top), per_mid)
    x = rng.normal(size=top.size) + 0.5 * rng.normal(size=n_top)[top]
    eta = -0.3 + 0.6 * x + rng.normal(0, 0.9, n_top)[top] + rng.normal(0, 0.7, mid.size)[mid]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    region = top // 3  # eight groups of three top-level clusters
    return pd.DataFrame({"y": y, "x": x, "top": top, "mid": mid, "region": region})


def _brute_sandwich(res, groups=None) -> np.ndarray:
    provider = MemoryEngines(res.design, res.family)
    engine = provider.laplace() if res.rule.is_laplace else provider.nested(res.rule)
    x = res.params_all
    scores = np.empty((res.design.n_top, x.size))
    for j in range(x.size):
        h = 1e-5 * max(1.0, abs(x[j]))
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        scores[:, j] = (engine.contributions(up).loglik - engine.contributions(down).loglik) / (
            2 * h
        )
    if groups is not None:
        summed = np.zeros((groups.max() + 1, x.size))
        np.add.at(summed, groups, scores)
        scores = summed
    g = scores.shape[0]
    return g / (g - 1.0) * scores.T @ scores


@pytest.mark.parametrize("method", ["laplace", None])
def test_robust_covariance_equals_the_sandwich_of_numerical_scores(data, method):
    formula = "y ~ x + (1 | top/mid)"
    model = mg.glmm(formula, data, method=method, quiet=True)
    robust = mg.glmm(formula, data, method=method, vce="robust", quiet=True)
    assert np.array_equal(robust.params_all, model.params_all)
    bread = model.cov_all
    want = bread @ _brute_sandwich(model) @ bread
    np.testing.assert_allclose(robust.cov_all, want, rtol=2e-5, atol=1e-12)
    assert robust.vce.n_clusters == 24 and robust.vce.variable == "top"
    # clusters of several top-level units: their scores summed first
    clustered = mg.glmm(formula, data, method=method, vce="cluster region", quiet=True)
    groups = (np.arange(24) // 3).astype(int)
    want = bread @ _brute_sandwich(model, groups) @ bread
    np.testing.assert_allclose(clustered.cov_all, want, rtol=2e-5, atol=1e-12)
    assert clustered.vce.n_clusters == 8


def test_robust_output_and_json(data):
    res = mg.glmm("y ~ x + (1 | top/mid)", data, method="laplace", vce="robust", quiet=True)
    text = str(res.summary())
    assert "(Std. Err. adjusted for 24 clusters in top)" in text
    assert "Robust" in text and "Log pseudolikelihood" in text and "LR test" not in text
    doc = json.loads(json.dumps(res.to_dict()))
    assert doc["vce"] == {"type": "robust", "cluster": "top", "n_clusters": 24}
    assert doc["lr_test"] is None


def test_robust_refused_for_crossed_factors_and_unnested_clusters(data):
    crossed = data.assign(item=np.arange(len(data)) % 7)
    with pytest.raises(MixedGLMError, match="needs independent clusters"):
        mg.glmm("y ~ x + (1 | top) + (1 | item)", crossed, vce="robust", quiet=True)
    cut = data.assign(half=np.arange(len(data)) % 2)  # splits every top-level cluster
    with pytest.raises(MixedGLMError, match="half"):
        mg.glmm("y ~ x + (1 | top/mid)", cut, method="laplace", vce="cluster half", quiet=True)
