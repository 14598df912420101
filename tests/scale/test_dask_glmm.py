"""glmm() on Dask equals the in-memory fit: estimates and standard errors to 1e-7 relative,
log-likelihoods to 1e-5, the same iteration log, table and JSON, and the same random effects
and predictions (as lazy Dask collections), for every family and for random slopes, on data
whose clusters arrive cut across partitions in any order."""

from __future__ import annotations

import re

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from scipy import special

import mixedglm as mg
from mixedglm.errors import DataError, FormulaError, MixedGLMError, OptionError

from refdata import load_reference_data


def simulate(family: str, seed: int = 3, n_groups: int = 120, slope: bool = False):
    """Small clustered data: a numeric and a text covariate (with a rare level), a slope
    variable, missing values, string cluster labels; rows in random order."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 14, n_groups)
    g = np.repeat(np.arange(n_groups), sizes)
    n = g.size
    x1 = rng.normal(size=n)
    z = rng.normal(size=n)
    region = rng.choice(["north", "south", "east"], n)
    region[rng.choice(n, 12, replace=False)] = "west"  # a rare level: not in every partition
    u0 = rng.normal(scale=0.7, size=n_groups)[g]
    u1 = rng.normal(scale=0.4, size=n_groups)[g] if slope else 0.0
    eta = -0.3 + 0.5 * x1 + 0.3 * (region == "south") + u0 + u1 * z
    trials = np.ones(n)
    if family in ("logit", "probit"):
        y = rng.binomial(1, special.expit(eta) if family == "logit" else special.ndtr(eta))
    elif family == "binomial":
        trials = rng.integers(1, 6, n).astype(float)
        y = rng.binomial(trials.astype(int), special.expit(eta))
    elif family == "poisson":
        y = rng.poisson(np.exp(eta) * trials)
    elif family == "nbinomial":
        y = rng.negative_binomial(2.0, 2.0 / (2.0 + np.exp(eta)))
    elif family == "gamma":
        y = rng.gamma(3.0, np.exp(eta) / 3.0)
    elif family == "ordinal":
        y = np.digitize(eta + rng.logistic(size=n), [-1.0, 0.0, 1.2])
    else:
        y = eta + rng.normal(scale=1.2, size=n)
    data = pd.DataFrame(
        {
            "y": y.astype(float),
            "x1": x1,
            "z": z,
            "region": region,
            "g": [f"c{k:03d}" for k in g],
            "n": trials,
            "expo": rng.uniform(0.5, 2.0, n),
        }
    )
    data.loc[rng.choice(n, 5, replace=False), "x1"] = np.nan
    return data.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def both(capsys, formula, data, npartitions=4, **kw):
    """The in-memory and the Dask fit, with their printed logs."""
    mem = mg.glmm(formula, data, **kw)
    log_mem = capsys.readouterr().out
    ddf = dd.from_pandas(data, npartitions=npartitions, sort=False)
    res = mg.glmm(formula, ddf, **kw)
    log_dask = capsys.readouterr().out
    return mem, log_mem, res, log_dask


def assert_same_numbers(mem, res):
    """Estimates, SEs and the covariance to 1e-7 relative, log-likelihoods to 1e-5."""
    np.testing.assert_allclose(res.params_all, mem.params_all, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(res.bse, mem.bse, rtol=1e-7)
    np.testing.assert_allclose(
        res.cov_all, mem.cov_all, rtol=1e-7, atol=1e-9 * np.abs(mem.cov_all).max()
    )
    assert abs(res.loglik - mem.loglik) < 1e-5
    assert abs(res.loglik_pooled - mem.loglik_pooled) < 1e-5


def assert_same(mem, res, log_mem="", log_dask=""):
    assert_same_numbers(mem, res)
    assert res.opt.iterations == mem.opt.iterations
    assert [h.format() for h in res.opt.history] == [h.format() for h in mem.opt.history]
    assert log_dask == log_mem  # progress bars go to standard error
    assert res.nobs == mem.nobs
    assert res.design.x_names == mem.design.x_names
    assert res.design.omitted == mem.design.omitted
    assert res.notes == mem.notes
    assert str(res.summary()) == str(mem.summary())
    d_mem, d_dask = mem.to_dict(), res.to_dict()
    assert d_dask.pop("engine") == "dask"
    assert d_dask.pop("partitions") >= 1
    assert d_dask.pop("workers") == 2
    for d in (d_mem, d_dask):
        d.pop("time_s")
    assert d_dask.keys() == d_mem.keys()
    assert d_dask["groups"] == d_mem["groups"]
    for key in ("coef", "random", "sd", "aux"):
        for a, b in zip(d_dask[key], d_mem[key], strict=True):
            assert a.keys() == b.keys()
            for k, v in b.items():
                if isinstance(v, float):
                    assert a[k] == pytest.approx(v, rel=1e-6, abs=1e-10), (key, k)
                else:
                    assert a[k] == v


def assert_same_effects(mem, res, kinds=("means",), expand=True):
    for kind in kinds:
        lazy = res.random_effects(kind)
        assert isinstance(lazy, dd.DataFrame)
        got = lazy.compute()
        want = mem.random_effects(kind)
        assert list(got.columns) == list(want.columns)
        assert got.index.name == want.index.name
        got = got.loc[want.index]
        np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-6, atol=1e-9)
    if not expand:
        return
    expanded = res.random_effects(expand=True).compute()
    want = mem.random_effects(expand=True)
    np.testing.assert_allclose(
        expanded.loc[want.index].to_numpy(), want.to_numpy(), rtol=1e-6, atol=1e-9
    )


def assert_same_predictions(mem, res, kinds=("mu", "eta")):
    for kind in kinds:
        for conditional in (True, False) if kind != "eta" else (True,):
            lazy = res.predict(kind=kind, conditional=conditional)
            assert isinstance(lazy, dd.Series | dd.DataFrame)
            got = lazy.compute()
            want = mem.predict(kind=kind, conditional=conditional)
            assert len(got) == len(want)
            np.testing.assert_allclose(
                np.asarray(got.loc[want.index]), np.asarray(want), rtol=1e-6, atol=1e-9
            )


def assert_same_accessors(mem, res):
    for name in ("fittedvalues", "resid_response", "resid_pearson", "resid_deviance"):
        lazy = getattr(res, name)
        assert isinstance(lazy, dd.Series)
        got, want = lazy.compute(), getattr(mem, name)
        assert len(got) == len(want)
        np.testing.assert_allclose(
            got.loc[want.index].to_numpy(), want.to_numpy(), rtol=1e-6, atol=1e-9
        )


@pytest.mark.slow
def test_contraception_logit_matches_in_memory_in_every_result(client, capsys):
    data = load_reference_data("contraception")
    formula = "use ~ age + I(age**2) + urban + C(livch) + (1 | district)"
    mem, log_mem, res, log_dask = both(capsys, formula, data, npartitions=5, nagq=7)
    assert_same(mem, res, log_mem, log_dask)
    assert "Fitting full model with 3 quadrature points" in log_mem
    assert_same_effects(mem, res, kinds=("means", "modes"))
    assert_same_predictions(mem, res)
    assert_same_accessors(mem, res)


@pytest.mark.parametrize(
    ("family", "options"),
    [
        ("probit", {"link": "probit", "nagq": 5}),
        ("binomial", {"trials": "n", "nagq": 4}),
        ("poisson", {"family": "poisson", "exposure": "expo"}),
        ("nbinomial", {"family": "nbinomial", "nagq": 3}),
        ("gamma", {"family": "gamma", "nagq": 3}),
        ("gaussian", {"family": "gaussian", "method": "mcaghermite", "nagq": 5}),
        ("ordinal", {"family": "ordinal", "nagq": 3}),
    ],
)
def test_every_family_matches_in_memory(client, capsys, family, options):
    data = simulate(family)
    formula = "y ~ x1 + region + (1 | g)"
    mem, log_mem, res, log_dask = both(capsys, formula, data, **options)
    assert_same(mem, res, log_mem, log_dask)
    assert "note: 5 observations dropped because of missing values (x1 5)" in res.notes
    assert_same_effects(mem, res, expand=False)
    if family in ("ordinal", "poisson"):
        assert_same_predictions(mem, res, ("pr",) if family == "ordinal" else ("mu",))


@pytest.mark.parametrize(
    ("formula", "options"),
    [
        ("y ~ x1 + z + (1 + z | g)", {"nagq": 1}),
        ("y ~ x1 + z + (1 + z || g)", {"nagq": 3, "method": "mcaghermite"}),
        ("y ~ x1 + z + (1 + z | g)", {"nagq": 3}),
    ],
    ids=["laplace-unstructured", "mcaghermite-independent", "mvaghermite-unstructured"],
)
def test_random_slopes_match_in_memory(client, capsys, formula, options):
    data = simulate("logit", seed=5, n_groups=150, slope=True)
    mem, log_mem, res, log_dask = both(capsys, formula, data, **options)
    assert_same(mem, res, log_mem, log_dask)
    if options["nagq"] == 1:
        assert_same_effects(mem, res, kinds=("modes",), expand=False)


@pytest.mark.slow
def test_subset_collinear_column_and_one_partition_per_cluster(client, capsys):
    data = simulate("poisson", seed=8)
    data["x1_twice"] = 2.0 * data["x1"]
    formula = "y ~ x1 + x1_twice + region + (1 | g)"
    kw = {"family": "poisson", "subset": "z > -1", "nagq": 3}
    mem, log_mem, res, log_dask = both(capsys, formula, data, npartitions=7, **kw)
    assert res.design.omitted == (("x1_twice", "collinearity"),)
    assert_same(mem, res, log_mem, log_dask)


def test_parquet_directory_with_engine_dask(client, tmp_path, capsys):
    data = simulate("logit", seed=9)
    for k in range(3):
        chunk = data.iloc[k::3]
        chunk.to_parquet(tmp_path / f"part{k}.parquet")
    mem = mg.glmm("y ~ x1 + region + (1 | g)", data, nagq=3, nolog=True)
    res = mg.glmm("y ~ x1 + region + (1 | g)", str(tmp_path), nagq=3, nolog=True, engine="dask")
    assert_same(mem, res)
    glob_res = mg.glmm(
        "y ~ x1 + region + (1 | g)",
        str(tmp_path / "part*.parquet"),
        nagq=3,
        nolog=True,
        engine="dask",
    )
    np.testing.assert_allclose(glob_res.params_all, mem.params_all, rtol=1e-7)


def test_engine_protocol_contributions_and_posterior(client):
    from mixedglm.engines.aghq import AGHQObjective
    from mixedglm.engines.dask_engine import DaskFactory
    from mixedglm.engines.rules import IntegrationRule
    from mixedglm.families import get_family
    from mixedglm.formula import parse_formula
    from mixedglm.models.glmm import choose_structure
    from mixedglm.scale.frame import distribute

    data = simulate("logit", seed=4)
    fam = get_family("bernoulli")
    parsed = parse_formula("y ~ x1 + z + (1 + z | g)")
    dist = distribute(
        client,
        dd.from_pandas(data, npartitions=3),
        parsed,
        fam,
        offset=None,
        exposure=None,
        trials=None,
        subset=None,
        show_progress=False,
    )
    try:
        design = mg.models.glmm.build_design(parsed, data, fam)
        structure = choose_structure(parsed, design, None)
        rule = IntegrationRule("mvaghermite", 3)
        engine = DaskFactory(dist, fam, structure)(rule)
        memory = AGHQObjective(design.cluster_arrays(), fam, structure, nagq=3)
        x = np.array([0.5, 0.1, -0.3, 0.6, 0.1, 0.3])
        for order in (0, 1, 2):
            a, b = engine.evaluate(x, order), memory(x, order)
            assert a.loglik == pytest.approx(b.loglik, abs=1e-8)
            if order:
                np.testing.assert_allclose(a.gradient, b.gradient, rtol=1e-9, atol=1e-9)
            if order == 2:
                np.testing.assert_allclose(a.hessian, b.hessian, rtol=1e-9, atol=1e-9)
        c, cm = engine.contributions(x), memory.contributions(x)
        np.testing.assert_allclose(c.loglik, cm.loglik, rtol=1e-10)
        np.testing.assert_allclose(c.score, cm.score, rtol=1e-8, atol=1e-10)
        for kind in ("means", "modes"):
            post = engine.posterior(x, kind)["g"]
            (want,) = memory.posterior(x, kind).values()
            assert post.kind == want.kind == kind
            np.testing.assert_allclose(post.mean, want.mean, rtol=1e-7, atol=1e-10)
            np.testing.assert_allclose(post.cov, want.cov, rtol=1e-7, atol=1e-10)
    finally:
        dist.release()


def test_bad_input_on_dask_is_refused_with_reasons(client):
    data = simulate("logit", seed=2)
    data["h"] = np.arange(len(data)) % 7  # crossed with g (h = g.str[:3] is nested: it fits)
    ddf = dd.from_pandas(data, npartitions=2)
    with pytest.raises(FormulaError, match=r"g, h are crossed: .* fit them in memory"):
        mg.glmm("y ~ x1 + (1 | g) + (1 | h)", ddf, nolog=True)
    with pytest.raises(DataError, match="variable 'x9' not found"):
        mg.glmm("y ~ x9 + (1 | g)", ddf, nolog=True)
    with pytest.raises(DataError, match="outcome 'y' must be 0 or 1"):
        mg.glmm("y ~ x1 + (1 | g)", ddf.assign(y=ddf.y * 2), nolog=True)
    with pytest.raises(DataError, match="no observations satisfy"):
        mg.glmm("y ~ x1 + (1 | g)", ddf, subset="x1 > 100", nolog=True)
    with pytest.raises(DataError, match=r"no \.parquet files"):
        mg.glmm("y ~ x1 + (1 | g)", "/", engine="dask", nolog=True)
    with pytest.raises(DataError, match="engine must be"):
        mg.glmm("y ~ x1 + (1 | g)", data, engine="spark", nolog=True)
    with pytest.raises(MixedGLMError, match="estimation sample"):
        mg.glmm("y ~ x1 + (1 | g)", ddf, nolog=True, nagq=1).predict(data)
    with pytest.raises(OptionError, match="offset 'x1' and exposure 'h' may not be combined"):
        mg.glmm("y ~ x1 + (1 | g)", ddf, offset="x1", exposure="h", nolog=True)


def test_option_combinations_refused_as_in_memory(client):
    ddf = dd.from_pandas(simulate("gaussian", seed=2), npartitions=2)
    with pytest.raises(MixedGLMError, match="not available with reml=True"):
        mg.glmm("y ~ x1 + (1 | g)", ddf, family="gaussian", reml=True, vce="robust")
    with pytest.raises(MixedGLMError, match="weights are not available with reml=True"):
        mg.glmm("y ~ x1 + (1 | g)", ddf, family="gaussian", reml=True, fweight="n")
    with pytest.raises(MixedGLMError, match="REML has no GLMM counterpart"):
        mg.glmm("y ~ x1 + (1 | g)", ddf, family="poisson", reml=True)


@pytest.mark.parametrize(
    "formula", ["y ~ x1 + C(region) + (1 | g)", "y ~ x1 + (1 + z | g)"], ids=["intercept", "slope"]
)
def test_reml_matches_in_memory(client, capsys, formula):
    data = simulate("gaussian", seed=9, slope=True)
    mem, log_mem, res, log_dask = both(capsys, formula, data, family="gaussian", reml=True)
    assert res.method == mem.method == "REML"
    assert_same_numbers(mem, res)
    assert log_dask == log_mem and res.notes == mem.notes and res.nobs == mem.nobs
    # the variances' standard errors come from a Hessian by central differences, which
    # agree to about 1e-8 (not to the table's last digit in every case): compared as numbers
    for key in ("coef", "random"):
        for a, b in zip(res.to_dict()[key], mem.to_dict()[key], strict=True):
            assert a.keys() == b.keys()
            for k, v in b.items():
                assert a[k] == (pytest.approx(v, rel=1e-7, abs=1e-9) if isinstance(v, float) else v)
    assert_same_effects(mem, res, expand=False)


def with_district(data: pd.DataFrame) -> pd.DataFrame:
    """A coarser clustering variable: every cluster of g inside one district (20 of them,
    numbered so that a district's clusters lie in several partitions)."""
    codes = data["g"].str[1:].astype(int)
    return data.assign(district=(codes % 20).map(lambda k: f"d{k:02d}"))


def test_cluster_vce_on_another_variable_matches_in_memory(client, capsys):
    data = with_district(simulate("logit", seed=4))
    mem, log_mem, res, log_dask = both(
        capsys, "y ~ x1 + (1 | g)", data, nagq=3, vce="cluster district"
    )
    assert res.vce == mem.vce and res.vce.n_clusters == 20
    assert_same(mem, res, log_mem, log_dask)
    for frame, vce in (  # the in-memory messages
        (data, "cluster region"),  # splits clusters of g
        (data.assign(district=data.district.where(data.x1.fillna(0) < 1.5)), "cluster district"),
        (data, "cluster nowhere"),
    ):
        with pytest.raises(DataError) as in_memory:
            mg.glmm("y ~ x1 + (1 | g)", frame, nagq=1, vce=vce, nolog=True)
        with pytest.raises(DataError, match=re.escape(str(in_memory.value))):
            mg.glmm(
                "y ~ x1 + (1 | g)", dd.from_pandas(frame, npartitions=3), nagq=1, vce=vce,
                nolog=True,
            )  # fmt: skip


def test_robust_standard_errors_match_in_memory(client, capsys):
    data = simulate("logit", seed=4)
    mem, log_mem, res, log_dask = both(capsys, "y ~ x1 + (1 | g)", data, nagq=3, vce="robust")
    assert res.vce == mem.vce
    assert_same(mem, res, log_mem, log_dask)


def test_margins_after_a_dask_fit_average_over_the_data_given(client, capsys):
    """margins() after a fit on Dask: over a pandas frame passed as data=, equal to the
    in-memory fit's margins over the same rows; without data= (or with a Dask frame) a
    clear error saying what to pass."""
    data = simulate("logit", seed=6)
    mem, _, res, _ = both(capsys, "y ~ x1 + C(region) + (1 | g)", data, nagq=3)
    rows = data.dropna()
    want = mem.margins(dydx="x1", data=rows)
    got = res.margins(dydx="x1", data=rows)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-6)
    with pytest.raises(MixedGLMError, match=r"data=.*pandas DataFrame"):
        res.margins(dydx="x1")
    with pytest.raises(MixedGLMError, match="compute the Dask DataFrame"):
        res.margins(dydx="x1", data=dd.from_pandas(rows, npartitions=2))


def test_lrtest_between_dask_fits_checks_the_sample(client):
    data = simulate("poisson", seed=6)
    ddf = dd.from_pandas(data, npartitions=4, sort=False)
    kw = {"family": "poisson", "nagq": 1, "nolog": True}
    small, big = "y ~ x1 + (1 | g)", "y ~ x1 + z + (1 | g)"
    a, b = mg.glmm(small, ddf, **kw), mg.glmm(big, ddf, **kw)
    other = mg.glmm(small, dd.from_pandas(data, npartitions=3, sort=False), **kw)
    sample = a.to_dict()["sample"]
    assert sample.startswith("dask:") and sample == b.to_dict()["sample"]
    assert other.to_dict()["sample"] == sample  # whatever the partitions
    got = mg.lrtest(a, b)
    want = mg.lrtest(mg.glmm(small, data, **kw), mg.glmm(big, data, **kw))
    assert got.df == want.df and got.kind == want.kind
    assert abs(got.stat - want.stat) < 2e-5
    assert mg.lrtest(a, mg.glmm(big, data, **kw)).df == 1  # memory and Dask: not compared
    changed = data.copy()
    changed.loc[changed.index[changed.x1.notna()][0], "y"] += 1.0  # same rows, other outcome
    moved = mg.glmm(big, dd.from_pandas(changed, npartitions=4, sort=False), **kw)
    assert moved.nobs == a.nobs
    with pytest.raises(MixedGLMError, match="different rows"):
        mg.lrtest(a, moved)
    relabelled = data.set_axis(data.index + 1_000_000)  # other rows (labels), same values
    with pytest.raises(MixedGLMError, match="different rows"):
        mg.lrtest(a, mg.glmm(big, dd.from_pandas(relabelled, npartitions=4, sort=False), **kw))


def with_weights(data: pd.DataFrame, seed: int = 5) -> pd.DataFrame:
    """Whole-number row weights, positive sampling weights and cluster weights (constant
    within each cluster of g)."""
    rng = np.random.default_rng(seed)
    codes = data["g"].str[1:].astype(int).to_numpy()
    return data.assign(
        fw=rng.integers(1, 4, len(data)).astype(float),
        pw=rng.uniform(0.5, 2.0, len(data)),
        gw=(1.0 + codes % 3).astype(float),
    )


@pytest.mark.parametrize(
    ("family", "weights"),
    [
        ("logit", {"fweight": "fw"}),
        ("poisson", {"pweight": "pw", "group_weights": {"g": "gw"}}),
        ("gaussian", {"group_weights": {"g": "gw"}}),
        ("poisson", {"fweight": "fw", "vce": "cluster district"}),
    ],
    ids=["fweight-logit", "pweight-groups-poisson", "groups-gaussian", "fweight-cluster-poisson"],
)
def test_weights_match_in_memory(client, capsys, family, weights):
    data = with_weights(with_district(simulate(family, seed=7)))
    fam = {"logit": "binomial"}.get(family, family)
    mem, log_mem, res, log_dask = both(
        capsys, "y ~ x1 + C(region) + (1 | g)", data, family=fam, nagq=7, **weights
    )
    assert res.weights == mem.weights and res.nobs == mem.nobs and res.vce == mem.vce
    assert_same(mem, res, log_mem, log_dask)
    assert_same_effects(mem, res, expand=False)


def test_bad_weights_on_dask_are_refused_as_in_memory(client):
    data = with_weights(simulate("logit", seed=8))
    cases = [
        (data.assign(fw=data.fw + 0.5), {"fweight": "fw"}),
        (data.assign(pw=data.pw.where(data.x1.fillna(0) < 2)), {"pweight": "pw"}),
        (data.assign(gw=data.gw * (data.z > 0)), {"group_weights": {"g": "gw"}}),
        (data.assign(gw=data.gw - 2.0), {"group_weights": {"g": "gw"}}),
        (data, {"group_weights": {"region": "gw"}}),
        (data, {"fweight": "fw", "pweight": "pw"}),
        (data, {"fweight": "nowhere"}),
    ]
    for frame, weights in cases:  # the in-memory messages
        with pytest.raises(MixedGLMError) as in_memory:
            mg.glmm("y ~ x1 + (1 | g)", frame, nagq=1, nolog=True, **weights)
        ddf = dd.from_pandas(frame, npartitions=3)
        with pytest.raises(type(in_memory.value), match=re.escape(str(in_memory.value))):
            mg.glmm("y ~ x1 + (1 | g)", ddf, nagq=1, nolog=True, **weights)
    with pytest.raises(MixedGLMError, match="not available with group_weights"):
        mg.glmm("y ~ x1 + (1 | g)", dd.from_pandas(data, 2), group_weights={"g": "gw"}, vce="r")
