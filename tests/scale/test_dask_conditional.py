"""clogit() and xtpoisson_fe() on Dask equal the in-memory fits: estimates and standard
errors to 1e-7 relative, log-likelihoods to 1e-5, the same notes (missing values, dropped
groups, omitted covariates), iteration log, table and JSON; with a text covariate (a rare
level), robust and cluster-robust standard errors, group weights and an exposure, on data
whose groups arrive cut across partitions."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pytest

import mixedglm as mg
from mixedglm.errors import DataError
from scale_checks import same_document, simulate_conditional

FORMULA = "y ~ x1 + x2 + x3 + gc + C(region)"


def assert_same(mem, res, log_mem: str, log_dask: str) -> None:
    np.testing.assert_allclose(res.params_array, mem.params_array, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(res.bse, mem.bse, rtol=1e-7)
    np.testing.assert_allclose(res.cov_array, mem.cov_array, rtol=1e-7, atol=1e-12)
    assert abs(res.loglik - mem.loglik) < 1e-5
    assert abs(res.loglik_0 - mem.loglik_0) < 1e-5
    assert [h.format() for h in res.opt.history] == [h.format() for h in mem.opt.history]
    assert log_dask == log_mem  # progress bars go to standard error
    assert res.notes == mem.notes
    assert (res.names, res.all_names, res.omitted) == (mem.names, mem.all_names, mem.omitted)
    assert (res.n_obs_dropped, res.n_groups_dropped) == (mem.n_obs_dropped, mem.n_groups_dropped)
    np.testing.assert_array_equal(res.group.labels, mem.group.labels)
    np.testing.assert_array_equal(res.group.sizes, mem.group.sizes)
    assert res.vce == mem.vce
    assert str(res.summary()) == str(mem.summary())
    same_document(res.to_dict(), mem.to_dict())


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("logit", {}),
        ("logit", {"vce": "robust"}),
        ("logit", {"group_weights": "w", "subset": "x2 > -2"}),
        ("poisson", {"exposure": "expo", "vce": "cluster county"}),
        ("poisson", {"group_weights": "w"}),
    ],
    ids=["logit", "logit-robust", "logit-weights-subset", "poisson-cluster", "poisson-weights"],
)
def test_conditional_models_match_in_memory(client, capsys, kind, options):
    fit = mg.clogit if kind == "logit" else mg.xtpoisson_fe
    data = simulate_conditional(kind)
    mem = fit(FORMULA, data, group="g", **options)
    log_mem = capsys.readouterr().out
    res = fit(FORMULA, dd.from_pandas(data, npartitions=4, sort=False), group="g", **options)
    log_dask = capsys.readouterr().out
    assert_same(mem, res, log_mem, log_dask)
    assert "note: 3 observations dropped because of missing values of the group variable g" in (
        res.notes
    )
    assert ("x3", "collinearity") in res.omitted
    assert ("gc", "no within-group variance") in res.omitted
    assert "C(region)[west]" in res.names
    assert any("dropped because of" in n and "group" in n for n in res.notes[2:])


def test_parquet_glob_with_engine_dask(client, tmp_path):
    data = simulate_conditional("logit", seed=3)
    for k in range(3):
        data.iloc[k::3].to_parquet(tmp_path / f"part{k}.parquet")
    mem = mg.clogit("y ~ x1 + x2", data, group="g", quiet=True)
    res = mg.clogit(
        "y ~ x1 + x2", str(tmp_path / "part*.parquet"), group="g", quiet=True, engine="dask"
    )
    np.testing.assert_allclose(res.params_array, mem.params_array, rtol=1e-7)
    assert res.to_dict()["partitions"] == 3


def test_offset_in_the_formula_as_in_memory(client):
    data = simulate_conditional("poisson", seed=5)
    formula = "y ~ x1 + x2 + offset(np.log(expo))"
    mem = mg.xtpoisson_fe(formula, data, group="g", quiet=True)
    ddf = dd.from_pandas(data, npartitions=3, sort=False)
    res = mg.xtpoisson_fe(formula, ddf, group="g", quiet=True)
    np.testing.assert_allclose(res.params_array, mem.params_array, rtol=1e-7)
    assert res.offset_name == mem.offset_name == "np.log(expo)"


def test_bad_input_on_dask_is_refused_with_reasons(client):
    data = simulate_conditional("logit", seed=2)
    ddf = dd.from_pandas(data, npartitions=2)
    with pytest.raises(DataError, match="must be coded 0/1"):
        mg.clogit("y ~ x1", ddf.assign(y=ddf.y * 2), group="g")
    with pytest.raises(DataError, match="no covariate is left"):
        mg.clogit("y ~ gc", ddf, group="g", quiet=True)
    with pytest.raises(DataError, match="group variable 'h' not found"):
        mg.clogit("y ~ x1", ddf, group="h")
    with pytest.raises(DataError, match="cluster variable 'k' not found"):
        mg.xtpoisson_fe("y ~ x1", ddf, group="g", vce="cluster k")
    with pytest.raises(DataError, match="missing in every observation"):
        mg.clogit("y ~ x1", ddf.assign(g=None), group="g")
