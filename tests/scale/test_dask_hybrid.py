"""hybrid() on Dask equals the in-memory fit: the decomposition (which variables are split,
their within shares, the notes), the mixed model's estimates and standard errors to 1e-7
relative and log-likelihood to 1e-5, the tests of the random-effects assumption, the table,
the iteration log and the JSON; on data with missing values whose clusters arrive cut
across partitions."""

from __future__ import annotations

import re

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from scipy import special

import mixedglm as mg
from mixedglm.errors import DataError
from scale_checks import same_document


def simulate(seed: int = 2, n_clusters: int = 80) -> pd.DataFrame:
    """A level-1 covariate correlated with the cluster effect, one that is nearly constant
    within clusters (skipped with percentage=), a gaussian and a binary outcome, missing
    values, string cluster labels, rows in random order."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), rng.integers(2, 10, n_clusters))
    n = g.size
    xb = rng.normal(size=n_clusters)[g]
    x1, x2 = xb + rng.normal(size=n), rng.normal(size=n)
    z = rng.normal(size=n_clusters)[g] + 0.05 * rng.normal(size=n)
    eta = 0.2 + 0.5 * x1 + 0.3 * xb - 0.4 * x2 + 0.2 * z + rng.normal(scale=0.6, size=n_clusters)[g]
    data = pd.DataFrame(
        {
            "y": eta + rng.normal(size=n),
            "yb": rng.binomial(1, special.expit(eta)).astype(float),
            "x1": x1,
            "x2": x2,
            "z": z,
            "g": [f"c{k:03d}" for k in g],
            "region": rng.choice(["north", "south"], n),
            "district": [f"d{k % 15:02d}" for k in g],  # coarser than g, across partitions
        }
    )
    data.loc[rng.choice(n, 6, replace=False), "x2"] = np.nan
    data.loc[rng.choice(n, 2, replace=False), "y"] = np.nan
    return data.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.mark.parametrize(
    ("formula", "options"),
    [
        ("y ~ x1 x2 z", {"percentage": 30}),
        ("yb ~ x1 x2", {"family": "binomial", "cre": True, "nagq": 5, "vce": "robust"}),
        ("y ~ x1 x2", {"randomslope": "x1", "nonlinearities": "quadratic", "iterations": True}),
        ("yb ~ x1 x2", {"family": "binomial", "nagq": 3, "vce": "cluster district"}),
    ],
    ids=["skipped-variable", "cre-logit-robust", "slope-quadratic-log", "logit-cluster-vce"],
)
def test_hybrid_matches_in_memory(client, capsys, formula, options):
    data = simulate()
    mem = mg.hybrid(formula, data, cluster="g", **options)
    log_mem = capsys.readouterr().out
    ddf = dd.from_pandas(data, npartitions=4, sort=False)
    res = mg.hybrid(formula, ddf, cluster="g", **options)
    log_dask = capsys.readouterr().out
    assert log_dask == log_mem  # progress bars go to standard error
    a, b = res.glmm, mem.glmm
    np.testing.assert_allclose(a.params_all, b.params_all, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-7)
    np.testing.assert_allclose(a.cov_all, b.cov_all, rtol=1e-7, atol=1e-12)
    assert abs(res.loglik - mem.loglik) < 1e-5
    assert [h.format() for h in a.opt.history] == [h.format() for h in b.opt.history]
    assert a.notes == b.notes and a.vce == b.vce
    dec, want = res.decomposition, mem.decomposition
    assert (dec.columns, dec.skipped, dec.within_percent) == (
        want.columns,
        want.skipped,
        want.within_percent,
    )
    assert dec.notes == want.notes and dec.n_dropped == want.n_dropped
    pd.testing.assert_frame_equal(res.tests(), mem.tests(), rtol=1e-7)
    assert res.table(se=True, test=True) == mem.table(se=True, test=True)
    assert str(res.summary()) == str(mem.summary())
    same_document(res.to_dict(), mem.to_dict())
    decomposed = dec.frame.compute().sort_index()
    pd.testing.assert_frame_equal(decomposed, want.frame.sort_index(), check_exact=False)


def test_bad_input_on_dask_is_refused_with_reasons(client):
    data = simulate(seed=3)
    cases = [
        ("y ~ x1 region", data),
        ("y ~ x1", data.assign(g=data.g.where(data.x1 > 0.5))),
        ("z ~ x1", data.assign(z=1.0)),
    ]
    for formula, frame in cases:  # the in-memory messages
        with pytest.raises(DataError) as in_memory:
            mg.hybrid(formula, frame, cluster="g")
        ddf = dd.from_pandas(frame, npartitions=2)
        with pytest.raises(DataError, match=re.escape(str(in_memory.value))):
            mg.hybrid(formula, ddf, cluster="g")


def test_lrtest_between_dask_hybrid_fits(client):
    data = simulate(seed=4)
    ddf = dd.from_pandas(data, npartitions=3, sort=False)
    small = mg.hybrid("y ~ x1", ddf, cluster="g", quiet=True)
    big = mg.hybrid("y ~ x1 z", ddf, cluster="g", quiet=True)
    assert small.to_dict()["sample"] == big.to_dict()["sample"]
    got = mg.lrtest(small, big)
    want = mg.lrtest(
        mg.hybrid("y ~ x1", data, cluster="g", quiet=True),
        mg.hybrid("y ~ x1 z", data, cluster="g", quiet=True),
    )
    assert got.df == want.df and abs(got.stat - want.stat) < 2e-5
    shifted = data.assign(y=data.y + np.where(data.index == data.y.first_valid_index(), 1.0, 0.0))
    other = mg.hybrid("y ~ x1 z", dd.from_pandas(shifted, npartitions=3), cluster="g", quiet=True)
    with pytest.raises(mg.MixedGLMError, match="different rows"):
        mg.lrtest(small, other)
