"""Frequency weights against duplicated data: a cluster of weight k equals k copies of the
cluster, a row of weight k equals k copies of the row (estimates, SEs, log-likelihood,
nobs, LR test)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from inference_data import fit
from mixedglm.cli import main
from mixedglm.errors import DataError, MixedGLMError


@pytest.fixture(scope="module")
def weighted(panel):
    rng = np.random.default_rng(1)
    wg = rng.integers(1, 4, size=50)
    data = panel.assign(wg=wg[panel["g"]], k=rng.integers(0, 3, size=len(panel)))
    data["cnt"] = rng.poisson(np.exp(0.3 * data["x"]))
    dup = pd.concat(
        [data[data.g == j].assign(g=f"{j}_{c}") for j in range(50) for c in range(wg[j])],
        ignore_index=True,
    )
    return data, dup


def _same_fit(a, b, rtol=2e-6):
    np.testing.assert_allclose(a.params_all, b.params_all, rtol=rtol, atol=1e-7)
    np.testing.assert_allclose(a.cov_all, b.cov_all, rtol=1e-4, atol=1e-9)
    assert a.loglik == pytest.approx(b.loglik, abs=1e-6)
    assert a.nobs == b.nobs


@pytest.mark.parametrize("method", ["mvaghermite", pytest.param("laplace", marks=pytest.mark.slow)])
def test_cluster_weights_equal_duplicated_clusters(weighted, method):
    data, dup = weighted
    a = fit("y ~ x + d + (1 | g)", data, group_weights={"g": "wg"}, method=method)
    b = fit("y ~ x + d + (1 | g)", dup, method=method)
    _same_fit(a, b)
    assert a.lr_test.stat == pytest.approx(b.lr_test.stat, abs=1e-5)
    assert a.design.group.n_groups == 50  # distinct clusters
    assert a.to_dict()["weights"]["group_weight"] == "wg"


def test_cluster_weights_with_a_random_slope_and_counts(weighted):
    data, dup = weighted
    a = fit("cnt ~ x + (1 + x || g)", data, family="poisson", group_weights={"g": "wg"}, nagq=5)
    b = fit("cnt ~ x + (1 + x || g)", dup, family="poisson", nagq=5)
    _same_fit(a, b, rtol=1e-5)


def test_level1_frequency_weights_equal_repeated_rows(weighted):
    data, _ = weighted
    expanded = data.loc[data.index.repeat(data["k"])]
    a = fit("y ~ x + d + (1 | g)", data, fweight="k")
    b = fit("y ~ x + d + (1 | g)", expanded)
    _same_fit(a, b)
    assert a.nobs == int(data["k"].sum())
    assert a.margins(dydx="x").loc["x", "estimate"] == pytest.approx(
        b.margins(dydx="x").loc["x", "estimate"], rel=1e-10
    )


def test_sampling_weights_are_the_pseudo_likelihood_with_robust_ses(weighted):
    data, _ = weighted
    data = data.assign(k1=data["k"] + 1)
    expanded = data.loc[data.index.repeat(data["k1"])]
    pw = fit("y ~ x + d + (1 | g)", data, pweight="k1")
    fw = fit("y ~ x + d + (1 | g)", expanded, vce="robust")
    # whole-number sampling weights: the same pseudo-likelihood and, clustered by g, the
    # same sandwich as the expanded data
    np.testing.assert_allclose(pw.params_all, fw.params_all, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(pw.cov_all, fw.cov_all, rtol=1e-4, atol=1e-9)
    assert pw.loglik == pytest.approx(fw.loglik, abs=1e-6)
    assert pw.vce is not None and pw.nobs == len(data)
    assert "Log pseudolikelihood" in str(pw.summary())


def test_conditional_models_take_group_weights(weighted):
    data, dup = weighted
    for command, formula in ((mg.clogit, "y ~ x + d"), (mg.xtpoisson_fe, "cnt ~ x + d")):
        a = command(formula, data, group="g", group_weights="wg", quiet=True, nolog=True)
        b = command(formula, dup, group="g", quiet=True, nolog=True)
        np.testing.assert_allclose(a.params, b.params, rtol=1e-8)
        np.testing.assert_allclose(a.bse, b.bse, rtol=1e-8)
        assert a.loglik == pytest.approx(b.loglik, abs=1e-8)


def test_weight_errors(weighted):
    data, _ = weighted
    data = data.assign(ex=np.exp(data["x"]))
    with pytest.raises(DataError, match="not constant within clusters"):
        fit("y ~ x + (1 | g)", data, group_weights={"g": "ex"})
    with pytest.raises(DataError, match="negative"):
        fit("y ~ x + (1 | g)", data, group_weights={"g": "x"})
    with pytest.raises(DataError, match="whole numbers"):
        fit("y ~ x + (1 | g)", data, fweight="ex")
    with pytest.raises(DataError, match="'nope' not found"):
        fit("y ~ x + (1 | g)", data, fweight="nope")
    with pytest.raises(MixedGLMError, match="grouping variable is 'g'"):
        fit("y ~ x + (1 | g)", data, group_weights={"pair": "wg"})
    with pytest.raises(MixedGLMError, match="not both"):
        fit("y ~ x + (1 | g)", data, pweight="wg", fweight="k")
    with pytest.raises(DataError, match="not constant within"):
        mg.clogit("y ~ x", data, group="g", group_weights="ex", quiet=True)


def test_cli_weight_options(weighted, tmp_path, capsys):
    data, dup = weighted
    path = tmp_path / "w.csv"
    data.to_csv(path, index=False)
    args = ["fit", str(path), "y ~ x + d + (1 | g)", "--nolog", "--json", "-"]
    assert main([*args, "--group-weight", "g=wg"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    b = fit("y ~ x + d + (1 | g)", dup)
    assert doc["loglik"] == pytest.approx(b.loglik, abs=1e-6)
    assert doc["nobs"] == b.nobs
    assert main([*args, "--fweight", "k"]) == 0
    assert json.loads(capsys.readouterr().out)["nobs"] == int(data["k"].sum())
    assert main([*args, "--pweight", "wg"]) == 0
    assert json.loads(capsys.readouterr().out)["vce"]["type"] == "robust"
    assert main([*args, "--fweight", "k"]) == 0
    assert json.loads(capsys.readouterr().out)["nobs"] == int(data["k"].sum())
    assert main([*args, "--group-weight", "wg"]) == 2
    assert "GROUP=VAR" in capsys.readouterr().err
    fe = ["clogit", str(path), "y ~ x + d", "--group", "g", "--nolog", "--group-weight", "wg"]
    assert main(fe) == 0
