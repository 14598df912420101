"""Nested models on Dask (whole top-level clusters per partition) equal the in-memory
multilevel fit: estimates and standard errors to 1e-7 relative, log-likelihoods to 1e-5, the
same iterations, iteration log, table (group summary included) and JSON, and the lazy random
effects and predictions to 1e-8, on data whose clusters arrive cut across partitions; with
the nesting written or only in the data, one interaction factor, an ordinal outcome; crossed
factors are refused with a message saying why and what to do."""

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


def assert_same(
    mem, res, log_mem: str, log_dask: str, exact_text: bool = True, predictions=None
) -> None:
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
    re_diff = assert_same_effects(mem, res)
    pr_diff = assert_same_predictions(mem, res, predictions or PREDICTIONS)
    print(
        f"max rel diff: estimates {rel(res.params_all, mem.params_all):.2e}, "
        f"SEs {rel(se_dask, se_mem):.2e}, loglik {abs(res.loglik - mem.loglik):.2e}; "
        f"max abs diff: random effects {re_diff:.2e}, predictions {pr_diff:.2e}"
    )


def assert_same_effects(mem, res) -> float:
    """The lazy random effects (one Dask DataFrame per factor, one partition per shuffled
    partition) equal the in-memory ones to 1e-8 once computed and sorted; the computed
    ones are in the in-memory order. The largest absolute difference."""
    lazy, want_all = res.random_effects(), mem.random_effects()
    assert list(lazy) == list(want_all)
    computed = res.computed_random_effects()
    worst = 0.0
    for name, want in want_all.items():
        assert isinstance(lazy[name], dd.DataFrame)
        assert lazy[name].npartitions == res.lazy.npartitions
        got = lazy[name].compute()
        assert got.index.name == want.index.name and list(got.columns) == list(want.columns)
        assert sorted(got.index) == sorted(want.index)
        got = got.loc[want.index]
        np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-8, atol=1e-8)
        assert computed[name].index.equals(want.index)
        np.testing.assert_allclose(computed[name].to_numpy(), got.to_numpy(), rtol=0, atol=0)
        worst = max(worst, float(np.max(np.abs(got.to_numpy() - want.to_numpy()))))
    return worst


PREDICTIONS = (
    {"kind": "mu"},
    {"kind": "eta", "fixedonly": True},
    {"kind": "xb"},
)


def assert_same_predictions(mem, res, options=PREDICTIONS) -> float:
    """Lazy predictions on the estimation sample (aligned with the shuffled partitions)
    equal the in-memory ones row by row (by the rows' labels) to 1e-8, also conditional
    on the top-level factor only. The largest absolute difference."""
    top = mem.design.factors[mem.design.order[0]].name
    worst = 0.0
    for kw in (*options, {"kind": "eta", "factors": [top]}):
        lazy = res.predict(**kw)
        assert isinstance(lazy, dd.Series)
        assert lazy.npartitions == res.lazy.npartitions
        got, want = lazy.compute(), mem.predict(**kw)
        assert got.name == want.name and len(got) == len(want) == mem.nobs
        assert got.index.is_unique and sorted(got.index) == sorted(want.index)
        got = got.loc[want.index]
        np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-8, atol=1e-8)
        worst = max(worst, float(np.max(np.abs(got.to_numpy() - want.to_numpy()))))
    return worst


def test_three_level_logit_equals_memory(client, capsys):
    data = simulate("logit")
    mem, log_mem, res, log_dask = both(
        capsys, "y ~ x + C(region) + (1 | comm/mom)", data, family="binomial"
    )
    assert_same(mem, res, log_mem, log_dask)
    assert res.rule.method == "mvaghermite" and res.nagq == 7
    assert "comm>mom" in str(res.summary())
    pd.testing.assert_frame_equal(res.sd(), mem.sd(), rtol=1e-7)
    pd.testing.assert_frame_equal(res.icc(), mem.icc(), rtol=1e-7)


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
    for name in ("fittedvalues", "resid_response", "resid_pearson", "resid_deviance"):
        lazy = getattr(res, name)
        assert isinstance(lazy, dd.Series)
        got, want = lazy.compute(), getattr(mem, name)
        np.testing.assert_allclose(got.loc[want.index], want, rtol=1e-8, atol=1e-8)
    with pytest.raises(MixedGLMError, match=r"predicts for the estimation sample"):
        res.predict(data)
    with pytest.raises(MixedGLMError, match="no grouping factor 'kid'"):
        res.predict(factors=["kid"])


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


@pytest.mark.parametrize("formula", ["y ~ x + (1 | comm/mom)", "y ~ x + (1 | comm)"])
def test_an_outcome_with_nothing_to_model_is_refused_on_dask(client, formula):
    """As in memory: before, the fit ran to a log likelihood of 0."""
    data = simulate("logit", seed=7).assign(y=1)
    ddf = dd.from_pandas(data, npartitions=3, sort=False)
    with pytest.raises(MixedGLMError, match="'y' is 1 in every observation"):
        mg.glmm(formula, ddf, family="binomial", nolog=True)


def test_margins_after_a_nested_dask_fit_equal_memory(client, capsys):
    data = simulate("logit", seed=8)
    mem, _, res, _ = both(capsys, "y ~ x + (1 | comm/mom)", data, method="laplace")
    rows = data.dropna()
    want = mem.margins(dydx="x", data=rows)
    np.testing.assert_allclose(
        res.margins(dydx="x", data=rows).to_numpy(), want.to_numpy(), rtol=1e-6
    )
    with pytest.raises(MixedGLMError, match=r"data=.*pandas DataFrame"):
        res.margins(dydx="x")


def test_cli_fits_a_nested_model_on_a_parquet_directory(client, tmp_path, capsys):
    whole, folder = parquet_parts(simulate("poisson", seed=9), tmp_path)
    common = ["y ~ x + (1 | comm/mom)", "--family", "poisson", "--nolog"]
    mem_json, dask_json = str(tmp_path / "mem.json"), str(tmp_path / "dask.json")
    mem_re, dask_re = str(tmp_path / "mem.csv"), str(tmp_path / "dask.csv")
    assert main(["fit", whole, *common, "--json", mem_json, "--reffects", mem_re]) == 0
    out_mem = capsys.readouterr().out
    args = ["fit", folder, *common, "--dask", "--workers", "2", "--json", dask_json]
    assert main([*args, "--reffects", dask_re]) == 0
    assert capsys.readouterr().out == out_mem
    mine, want = json.loads(open(dask_json).read()), json.loads(open(mem_json).read())
    assert (mine["engine"], mine["partitions"], mine["workers"]) == ("dask", 3, 2)
    assert mine["groups"] == want["groups"]
    for a, b in zip(mine["coef"], want["coef"], strict=True):
        assert a["estimate"] == pytest.approx(b["estimate"], rel=1e-7)
        assert a["se"] == pytest.approx(b["se"], rel=1e-7)
    assert mine["loglik"] == pytest.approx(want["loglik"], abs=1e-5)
    re_mem, re_dask = pd.read_csv(mem_re), pd.read_csv(dask_re)  # lazy, computed by the CLI
    assert re_dask[["factor", "level"]].equals(re_mem[["factor", "level"]])
    assert (
        list(re_dask.columns) == list(re_mem.columns) == ["factor", "level", "_cons", "se(_cons)"]
    )
    numbers = ["_cons", "se(_cons)"]
    np.testing.assert_allclose(re_dask[numbers], re_mem[numbers], rtol=1e-8, atol=1e-8)


def test_nesting_implied_by_the_data_equals_memory(client, capsys):
    """(1 | comm) + (1 | klass) with every klass in one comm (not written comm/klass):
    nested in memory, and on Dask (decided on the estimation sample, shuffled on comm)."""
    data = simulate("poisson", seed=12)
    data["klass"] = data.comm.str.cat(data.mom.astype(str), sep="-")  # missing with comm
    data["mom"] = data.mom.where(data.index % 7 != 0)  # not in the model: not a reason to drop
    formula = "y ~ x + C(region) + (1 | klass) + (1 | comm)"
    mem, log_mem, res, log_dask = both(capsys, formula, data, family="poisson")
    assert mem.design.nested
    assert_same(mem, res, log_mem, log_dask)
    assert [f.name for f in res.factors] == ["klass", "comm"]
    assert res.design.display == ("comm>klass", "comm")
    assert "comm>klass" in str(res.summary())


def test_nesting_in_the_estimation_sample_only_is_decided_there(client, capsys):
    """A klass met in two comms only on rows the model drops (x missing) is nested in the
    estimation sample: fitted as nested, as in memory; a subset keeping such rows crossed."""
    data = simulate("logit", seed=13)
    data["klass"] = data.comm.str.cat(data.mom.astype(str), sep="-")
    stray = data.index[data.x.isna() & data.comm.notna()][0]
    other = data.comm[data.comm.notna() & (data.comm != data.comm[stray])].iloc[0]
    data.loc[stray, "comm"] = other  # klass of row 'stray' now in two comms, but x missing
    formula = "y ~ x + (1 | comm) + (1 | klass)"
    mem, log_mem, res, log_dask = both(capsys, formula, data, family="binomial", nolog=True)
    assert_same(mem, res, log_mem, log_dask)
    data.loc[stray, "x"] = 0.5
    ddf = dd.from_pandas(data, npartitions=3, sort=False)
    with pytest.raises(FormulaError, match="comm, klass are crossed"):
        mg.glmm(formula, ddf, family="binomial", nolog=True)


def test_one_interaction_factor_equals_memory(client, capsys):
    data = simulate("logit", seed=14)
    formula = "y ~ x + C(region) + (1 | comm:mom)"
    mem, log_mem, res, log_dask = both(capsys, formula, data, family="binomial")
    assert_same(mem, res, log_mem, log_dask)
    assert [f.name for f in res.factors] == ["comm:mom"]
    assert res.rule.method == "mvaghermite"


def test_ordinal_with_two_nested_factors_equals_memory(client, capsys):
    data = simulate("poisson", seed=15)
    data["y"] = np.minimum(data.y, 3.0)  # four ordered categories
    formula = "y ~ x + C(region) + (1 | comm/mom)"
    # the joint Laplace engine (the nested quadrature of every family, ordinal included, is
    # tested in memory: tests/multilevel/test_nested_aghq.py)
    kw = {"family": "ologit", "method": "laplace"}
    mem, log_mem, res, log_dask = both(capsys, formula, data, **kw)
    assert_same(
        mem, res, log_mem, log_dask, exact_text=False,
        predictions=({"kind": "xb"}, {"kind": "eta"}),
    )  # fmt: skip
    assert res.family.is_ordinal and len(res.family.categories) == 4
    with pytest.raises(MixedGLMError, match="no mean outcome"):
        res.predict(kind="mu")
    with pytest.raises(MixedGLMError, match="not defined for ordinal models"):
        _ = res.fittedvalues


def test_lrtest_between_nested_fits_checks_the_sample(client):
    """Nested fits carry their sample's signature (in memory: the rows' labels and outcome;
    on Dask: ``dask:`` rows and the sum of the rows' hashes, whatever the partitions):
    lrtest compares two nested fits on the same sample as in memory and refuses two fitted
    on different outcomes."""
    data = simulate("logit", seed=8)
    kw = {"family": "binomial", "method": "laplace", "nolog": True}
    small, big = "y ~ x + (1 | comm/mom)", "y ~ x + C(region) + (1 | comm/mom)"

    def on_dask(frame: pd.DataFrame, formula: str, parts: int = 4):
        return mg.glmm(formula, dd.from_pandas(frame, npartitions=parts, sort=False), **kw)

    a, b, other = on_dask(data, small), on_dask(data, big), on_dask(data, small, parts=3)
    sample = a.to_dict()["sample"]
    assert sample.startswith("dask:") and sample == b.to_dict()["sample"]
    assert other.to_dict()["sample"] == sample
    mem_a, mem_b = mg.glmm(small, data, **kw), mg.glmm(big, data, **kw)
    assert mem_a.to_dict()["sample"] == mem_b.to_dict()["sample"]
    got, want = mg.lrtest(a, b), mg.lrtest(mem_a, mem_b)
    assert got.df == want.df == 2  # C(region): three levels
    assert abs(got.stat - want.stat) < 1e-4
    changed = data.copy()
    changed.loc[changed.index[changed.x.notna() & changed.comm.notna()][0], "y"] = 1.0 - float(
        changed.loc[changed.index[changed.x.notna() & changed.comm.notna()][0], "y"]
    )
    with pytest.raises(MixedGLMError, match="different rows"):
        mg.lrtest(a, on_dask(changed, big))
    with pytest.raises(MixedGLMError, match="different rows"):
        mg.lrtest(mem_a, mg.glmm(big, changed, **kw))
