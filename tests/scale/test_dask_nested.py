"""Nested models on Dask (whole top-level clusters per partition) equal the in-memory
multilevel fit: estimates and standard errors to 1e-7 relative, log-likelihoods to 1e-5, the
same iterations, iteration log, table (group summary included), JSON and random effects, on
data whose clusters arrive cut across partitions; crossed factors are refused with a message
saying why and what to do."""

from __future__ import annotations

import json
import re

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from scipy import special

import mixedglm as mg
from mixedglm.cli import main
from mixedglm.errors import FormulaError, MixedGLMError
from mixedglm.results.dask_multilevel import DaskMultilevelResults
from scale_checks import parquet_parts


def simulate(family: str, seed: int = 5, n_top: int = 40, slope: float = 0.0) -> pd.DataFrame:
    """Three levels (observations in ``mom`` in ``comm``; ``mom`` numbered within ``comm``),
    a text covariate, an exposure, a few missing values (of ``x`` and of ``comm``: two notes
    in memory); rows in random order. ``slope``:
    the SD of ``comm``'s random slope on ``x``."""
    rng = np.random.default_rng(seed)
    comm, mom, u, b = [], [], [], []
    for c in range(n_top):
        uc, bc = rng.normal(scale=0.8), rng.normal(scale=slope)
        for m in range(rng.integers(2, 5)):
            um = rng.normal(scale=1.0 if family == "logit" else 0.5)
            k = int(rng.integers(2, 7))
            comm += [f"c{c:02d}"] * k
            mom += [m] * k
            u += [uc + um] * k
            b += [bc] * k
    n = len(comm)
    x = rng.normal(size=n)
    region = rng.choice(["north", "south", "east"], n)
    expo = rng.uniform(0.5, 2.0, n)
    eta = -0.2 + (0.6 + np.array(b)) * x + 0.3 * (region == "south") + np.array(u)
    if family == "logit":
        y = rng.binomial(1, special.expit(eta))
    else:
        y = rng.poisson(np.exp(eta) * expo)
    data = pd.DataFrame(
        {"y": y.astype(float), "x": x, "region": region, "comm": comm, "mom": mom,
         "lexpo": np.log(expo)}
    )  # fmt: skip
    data.loc[rng.choice(n, 4, replace=False), "x"] = np.nan
    data.loc[rng.choice(n, 3, replace=False), "comm"] = None  # dropped first, own note
    return data.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def both(capsys, formula: str, data: pd.DataFrame, **kw):
    """The in-memory and the Dask fit (4 input partitions), with their printed logs."""
    mem = mg.glmm(formula, data, **kw)
    log_mem = capsys.readouterr().out
    res = mg.glmm(formula, dd.from_pandas(data, npartitions=4, sort=False), **kw)
    log_dask = capsys.readouterr().out
    return mem, log_mem, res, log_dask


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]\d+)?")


def same_text(got: str, want: str) -> None:
    """The same lines, their numbers equal to 1e-7 relative (the joint Laplace stage's
    log may differ in its last printed digit: see test_laplace_equals_memory)."""
    got_lines, want_lines = got.splitlines(), want.splitlines()
    assert len(got_lines) == len(want_lines)
    for a, b in zip(got_lines, want_lines, strict=True):
        assert NUMBER.sub("#", a) == NUMBER.sub("#", b)
        x, y = (np.array(NUMBER.findall(t), dtype=float) for t in (a, b))
        np.testing.assert_allclose(x, y, rtol=1e-7, err_msg=a)


def assert_same(mem, res, log_mem: str, log_dask: str, exact_text: bool = True) -> None:
    assert isinstance(res, DaskMultilevelResults)
    np.testing.assert_allclose(res.params_all, mem.params_all, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(res.bse, mem.bse, rtol=1e-7)
    se_mem, se_dask = np.sqrt(np.diag(mem.cov_all)), np.sqrt(np.diag(res.cov_all))
    np.testing.assert_allclose(se_dask, se_mem, rtol=1e-7)
    assert abs(res.loglik - mem.loglik) < 1e-5
    assert abs(res.loglik_pooled - mem.loglik_pooled) < 1e-5
    assert res.opt.iterations == mem.opt.iterations
    assert res.nobs == mem.nobs
    assert res.notes == mem.notes
    assert res.design.base.n_dropped_missing == mem.design.base.n_dropped_missing
    for f_mem, f_dask in zip(mem.factors, res.factors, strict=True):
        assert f_dask.name == f_mem.name
        np.testing.assert_array_equal(f_dask.labels, f_mem.labels)
        np.testing.assert_array_equal(np.sort(f_dask.sizes), np.sort(f_mem.sizes))
    mem_lines, dask_lines = str(mem.summary()).splitlines(), str(res.summary()).splitlines()
    groups = slice(2, 9)  # the group summary: groups, min / avg / max observations per group
    assert dask_lines[groups] == mem_lines[groups]
    assert "Group Variable" in "\n".join(dask_lines[groups])
    same_text(log_dask, log_mem)  # progress bars go to standard error
    if exact_text:
        assert dask_lines == mem_lines
    d_mem, d_dask = mem.to_dict(), res.to_dict()
    assert (d_dask.pop("engine"), d_dask.pop("partitions"), d_dask.pop("workers")) == (
        "dask",
        4,
        2,
    )
    assert d_dask["groups"] == d_mem["groups"]
    for name, want in mem.random_effects().items():
        got = res.random_effects()[name]
        assert list(got.index) == list(want.index) and list(got.columns) == list(want.columns)
        scale = np.abs(want.to_numpy()).max()
        np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-6, atol=1e-6 * scale)
    print(
        f"max rel diff: estimates {rel(res.params_all, mem.params_all):.2e}, "
        f"SEs {rel(se_dask, se_mem):.2e}, loglik {abs(res.loglik - mem.loglik):.2e}"
    )


def test_three_level_logit_equals_memory(client, capsys):
    data = simulate("logit")
    mem, log_mem, res, log_dask = both(
        capsys, "y ~ x + C(region) + (1 | comm/mom)", data, family="binomial"
    )
    assert_same(mem, res, log_mem, log_dask)
    assert res.rule.method == "mvaghermite" and res.nagq == 7
    assert "comm>mom" in str(res.summary())


def test_points_per_level_and_mode_curvature_equal_memory(client, capsys):
    data = simulate("logit")
    mem, log_mem, res, log_dask = both(
        capsys, "y ~ x + C(region) + (1 | comm/mom)", data, family="binomial",
        method="mcaghermite", nagq={"comm": 5, "comm>mom": 4},
    )  # fmt: skip
    assert_same(mem, res, log_mem, log_dask)
    assert res.rule.levels == (("comm", 5), ("comm:mom", 4)) and res.method == "mcaghermite"
    assert "points per level: comm 5, comm>mom 4" in log_dask


def test_random_slope_with_laplace_equals_memory(client, capsys):
    data = simulate("poisson", seed=11, slope=0.5, n_top=60)
    formula = "y ~ x + (1 + x | comm) + (1 | comm:mom)"
    mem, log_mem, res, log_dask = both(capsys, formula, data, family="poisson", method="laplace")
    assert_same(mem, res, log_mem, log_dask, exact_text=False)
    assert [f.q for f in res.factors] == [2, 1]


def test_poisson_with_offset_equals_memory(client, capsys):
    data = simulate("poisson", seed=8)
    formula = "y ~ x + C(region) + (1 | comm) + (1 | comm:mom)"
    mem, log_mem, res, log_dask = both(capsys, formula, data, family="poisson", offset="lexpo")
    assert_same(mem, res, log_mem, log_dask)


def test_laplace_equals_memory(client, capsys):
    data = simulate("logit", seed=6)
    mem, log_mem, res, log_dask = both(
        capsys, "y ~ x + (1 | comm/mom)", data, family="binomial", method="laplace", nolog=True
    )
    # the joint Laplace modes stop at a relative tolerance of the whole sample's (in
    # memory) or each partition's objective: the finite-difference Hessian differs in the
    # last digits, so the printed table may differ in its last digit
    assert_same(mem, res, log_mem, log_dask, exact_text=False)
    assert res.rule.is_laplace
    long_mem, long_dask = mem.random_effects_long(), res.random_effects_long()
    assert long_dask[["factor", "level"]].equals(long_mem[["factor", "level"]])
    with pytest.raises(MixedGLMError, match=r"predict\(\) after a nested fit on Dask"):
        res.predict()


def test_four_levels_with_laplace_equal_memory(client, capsys):
    rng = np.random.default_rng(3)
    rows = []
    for a in range(30):
        ua = rng.normal(scale=0.8)
        for b in range(rng.integers(2, 4)):
            ub = ua + rng.normal(scale=0.6)
            for c in range(rng.integers(2, 4)):
                u = ub + rng.normal(scale=0.6)
                rows += [(a, b, f"k{c}", u)] * int(rng.integers(2, 5))
    data = pd.DataFrame(rows, columns=["a", "b", "c", "u"])
    data["x"] = rng.normal(size=len(data))
    data["y"] = rng.poisson(np.exp(0.2 + 0.5 * data.x + data.u)).astype(float)
    data = data.drop(columns="u").sample(frac=1.0, random_state=1).reset_index(drop=True)
    mem, log_mem, res, log_dask = both(
        capsys, "y ~ x + (1 | a/b/c)", data, family="poisson", method="laplace"
    )
    assert_same(mem, res, log_mem, log_dask, exact_text=False)
    assert [f.name for f in res.factors] == ["a", "a:b", "a:b:c"]
    assert res.design.display == ("a", "a>b", "a>b>c")


def test_crossed_factors_are_refused_with_the_reason(client):
    data = simulate("logit", seed=7)
    data["item"] = np.arange(len(data)) % 9
    ddf = dd.from_pandas(data, npartitions=3, sort=False)
    with pytest.raises(FormulaError) as err:
        mg.glmm("y ~ x + (1 | comm) + (1 | item)", ddf, family="binomial", nolog=True)
    text = str(err.value)
    assert "comm, item are crossed" in text
    assert "do not split into independent clusters" in text
    assert "fit them in memory" in text


def test_weights_and_vce_with_nested_factors_are_refused_on_dask(client):
    ddf = dd.from_pandas(simulate("logit", seed=7), npartitions=3, sort=False)
    for option in ({"vce": "robust"}, {"fweight": "mom"}):
        with pytest.raises(MixedGLMError, match="with several grouping factors is not"):
            mg.glmm("y ~ x + (1 | comm/mom)", ddf, family="binomial", nolog=True, **option)


def test_cli_fits_a_nested_model_on_a_parquet_directory(client, tmp_path, capsys):
    whole, folder = parquet_parts(simulate("poisson", seed=9), tmp_path)
    common = ["y ~ x + (1 | comm/mom)", "--family", "poisson", "--nolog"]
    mem_json, dask_json = str(tmp_path / "mem.json"), str(tmp_path / "dask.json")
    assert main(["fit", whole, *common, "--json", mem_json]) == 0
    out_mem = capsys.readouterr().out
    args = ["fit", folder, *common, "--dask", "--workers", "2", "--json", dask_json]
    assert main(args) == 0
    assert capsys.readouterr().out == out_mem
    mine, want = json.loads(open(dask_json).read()), json.loads(open(mem_json).read())
    assert (mine["engine"], mine["partitions"], mine["workers"]) == ("dask", 3, 2)
    assert mine["groups"] == want["groups"]
    for a, b in zip(mine["coef"], want["coef"], strict=True):
        assert a["estimate"] == pytest.approx(b["estimate"], rel=1e-7)
        assert a["se"] == pytest.approx(b["se"], rel=1e-7)
    assert mine["loglik"] == pytest.approx(want["loglik"], abs=1e-5)
