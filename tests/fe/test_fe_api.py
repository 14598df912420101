"""mg.clogit and mg.xtpoisson_fe: references (survival::clogit, the Poisson dummy-variable
identity), Stata's data handling and notes, odds ratios, JSON, and the errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln

import mixedglm as mg
from mixedglm.engines.conditional import clogit_evaluate_reference
from mixedglm.errors import DataError, FormulaError, MixedGLMError

from refdata import REFERENCE, load_reference

SIMPANEL = REFERENCE / "data" / "sim_panel_logit.csv"
CONTRA = REFERENCE / "data" / "contraception.csv"


def check_reference(res, ref: dict) -> None:
    """Coefficients, SEs, covariance and log-likelihood within 1e-6 relative."""
    np.testing.assert_allclose(res.params.to_numpy(), ref["fixef"]["estimate"], rtol=1e-6)
    np.testing.assert_allclose(res.bse.to_numpy(), ref["fixef"]["se"], rtol=1e-6)
    np.testing.assert_allclose(res.zvalues.to_numpy(), ref["fixef"]["z"], rtol=1e-6)
    np.testing.assert_allclose(res.cov_params.to_numpy(), ref["vcov"], rtol=1e-6, atol=1e-14)
    assert res.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    assert res.loglik_0 == pytest.approx(ref["loglik_null"], rel=1e-9)
    assert res.n_groups == ref["n_informative_strata"]
    assert res.nobs == ref["n_obs_informative"]
    assert res.converged


def test_clogit_matches_survival_on_the_simulated_panel():
    res = mg.clogit("y ~ x1 + x2 + x3", SIMPANEL, group="id", quiet=True)
    check_reference(res, load_reference("simpanel_clogit_exact"))
    assert res.multiple_positive
    assert res.n_groups_dropped == 300 - 219


def test_clogit_matches_survival_on_contraception():
    res = mg.clogit(
        "use ~ age + I(age**2) + urban + C(livch)", str(CONTRA), group="district", quiet=True
    )
    assert list(res.params.index) == [
        "age",
        "I(age ** 2)",
        "urban",
        "C(livch)[1]",
        "C(livch)[2]",
        "C(livch)[3+]",
    ]
    check_reference(res, load_reference("contra_clogit_exact"))


def test_odds_ratios_are_exp_b_with_delta_method_se():
    res = mg.clogit("y ~ x1 + x2 + x3", SIMPANEL, group="id", quiet=True)
    plain = res.to_frame()
    odds = res.to_frame(or_=True)
    b, se = plain["estimate"], plain["se"]
    np.testing.assert_allclose(odds["estimate"], np.exp(b))
    np.testing.assert_allclose(odds["se"], np.exp(b) * se)
    np.testing.assert_allclose(odds["ci_low"], np.exp(plain["ci_low"]))
    np.testing.assert_allclose(odds["ci_high"], np.exp(plain["ci_high"]))
    np.testing.assert_array_equal(odds["z"], plain["z"])
    np.testing.assert_array_equal(odds["p"], plain["p"])
    text = str(res.summary(or_=True))
    assert "           y | Odds Ratio   Std. Err.      z    P>|z|" in text
    fitted_or = mg.clogit("y ~ x1 + x2 + x3", SIMPANEL, group="id", or_=True, quiet=True)
    assert str(fitted_or.summary()) == text
    assert fitted_or.to_dict()["eform"] == "Odds Ratio"
    with pytest.raises(MixedGLMError, match="irr= is for the Poisson model"):
        res.summary(irr=True)


def poisson_panel(seed: int = 5, n_groups: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 12, size=n_groups)
    g = np.repeat(np.arange(n_groups), sizes)
    n = g.size
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    t = rng.uniform(0.5, 3.0, size=n)
    alpha = rng.normal(1.0, 0.5, size=n_groups)[g]
    y = rng.poisson(np.exp(alpha + 0.4 * x1 - 0.3 * x2) * t)
    return pd.DataFrame({"g": g, "y": y, "x1": x1, "x2": x2, "t": t})


def test_xtpoisson_fe_equals_poisson_glm_with_group_dummies():
    sm = pytest.importorskip("statsmodels.api")
    df = poisson_panel()
    totals = df.groupby("g")["y"].sum()
    assert (totals > 0).all()  # a group of zeros would send its dummy to -inf
    res = mg.xtpoisson_fe("y ~ x1 + x2", df, group="g", exposure="t", quiet=True)
    dummies = pd.get_dummies(df["g"], dtype=float).to_numpy()
    X = np.column_stack([df[["x1", "x2"]].to_numpy(), dummies])
    glm = sm.GLM(df["y"], X, family=sm.families.Poisson(), offset=np.log(df["t"])).fit(tol=1e-14)
    np.testing.assert_allclose(res.params.to_numpy(), glm.params[:2], rtol=1e-6)
    np.testing.assert_allclose(res.bse.to_numpy(), glm.bse[:2], rtol=1e-6)
    # the log-likelihoods differ by sum_g [Y log Y - Y - lnGamma(Y + 1)]
    gap = float(np.sum(totals * np.log(totals) - totals - gammaln(totals + 1)))
    assert glm.llf - res.loglik == pytest.approx(gap, rel=1e-8)


def test_xtpoisson_fe_offset_equals_log_exposure_and_drops_groups_with_notes():
    df = poisson_panel(seed=6)
    df.loc[df["g"] == 3, "y"] = 0  # all zero
    single = pd.DataFrame({"g": [99], "y": [4], "x1": [0.1], "x2": [0.2], "t": [1.0]})
    df = pd.concat([df, single], ignore_index=True)
    df["logt"] = np.log(df["t"])
    df["size"] = df["g"] % 3  # constant within groups
    a = mg.xtpoisson_fe("y ~ x1 + x2 + size", df, group="g", exposure="t", quiet=True)
    b = mg.xtpoisson_fe("y ~ x1 + x2", df, group="g", offset="logt", irr=True, quiet=True)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12)
    assert a.loglik == pytest.approx(b.loglik, rel=1e-12)
    size3 = int((df["g"] == 3).sum())
    assert a.notes == (
        "note: 1 group (1 obs) dropped because of only one obs per group",
        f"note: 1 group ({size3} obs) dropped because of all zero outcomes",
        "note: size dropped because it is constant within group",
    )
    assert a.omitted == (("size", "no within-group variance"),)
    text = str(a.summary())
    assert text.splitlines()[3].startswith("Conditional fixed-effects Poisson regression")
    assert "        size |          0  (omitted)" in text
    assert "       ln(t) |          1  (exposure)" in text
    assert "Wald chi2(2)" in text
    assert "        logt |          1  (offset)" in str(b.summary())
    assert "|        IRR   Std. Err." in str(b.summary())
    with pytest.raises(MixedGLMError, match="or_= is for the conditional logit"):
        a.summary(or_=True)


def test_seed_analysis_on_papers_with_factor_and_plain_covariates():
    data = mg.load_data("papers")
    covariates = "nauthors + npages + nrefs + jifperc + careerstage"
    fac = mg.clogit(
        f"paprbest ~ {covariates} + C(female) + C(usa) + C(socialscience)",
        data,
        group="id",
        quiet=True,
    )
    plain = mg.clogit(
        f"paprbest ~ {covariates} + female + usa + socialscience", data, group="id", quiet=True
    )
    assert fac.notes == (
        "note: 799 groups (799 obs) dropped because of all positive or all negative outcomes.",
        "note: 1.female omitted because of no within-group variance.",
        "note: 1.usa omitted because of no within-group variance.",
        "note: 1.socialscience omitted because of no within-group variance.",
    )
    assert plain.notes[1] == "note: female omitted because of no within-group variance."
    assert (fac.nobs, fac.n_groups, fac.group.min, fac.group.max) == (373_535, 13_330, 2, 683)
    assert fac.lr_test.df == 5 and fac.converged
    np.testing.assert_array_equal(fac.params.to_numpy(), plain.params.to_numpy())
    text = str(fac.summary()).splitlines()
    assert text[:2] == [
        "note: 799 groups (799 obs) dropped because of all positive or",
        "      all negative outcomes.",
    ]
    assert text[-4:] == [
        "              |",
        "socialscience |",
        "         Yes  |          0  (omitted)",  # the value label, as the seed
        "-" * 79,
    ]
    assert "       female |          0  (omitted)" in str(plain.summary())
    doc = json.loads(json.dumps(fac.to_dict()))
    assert doc["omitted"][0] == {"term": "C(female)[1]", "reason": "no within-group variance"}
    assert doc["random"] == [] and doc["groups"]["id"]["n"] == 13_330


def test_a_group_of_683_rows_with_300_events():
    rng = np.random.default_rng(11)
    sizes = np.r_[683, rng.integers(2, 30, size=60)]
    g = np.repeat(np.arange(sizes.size), sizes)
    x = rng.normal(size=(g.size, 2))
    y = (rng.random(g.size) < 0.3).astype(int)
    big = np.flatnonzero(g == 0)
    y[big] = 0
    y[rng.choice(big, 300, replace=False)] = 1
    df = pd.DataFrame({"g": g, "y": y, "x1": x[:, 0], "x2": x[:, 1]})
    res = mg.clogit("y ~ x1 + x2", df, group="g", quiet=True)
    assert np.isfinite(res.loglik) and res.converged
    keep = df.groupby("g")["y"].transform(lambda v: 0 < v.sum() < v.size).to_numpy()
    sub = df[keep]
    starts = np.r_[0, np.cumsum(sub.groupby("g").size().to_numpy())]
    ref = clogit_evaluate_reference(
        res.params.to_numpy(), sub[["x1", "x2"]].to_numpy(), sub["y"].to_numpy(float), starts
    )
    assert res.loglik == pytest.approx(ref.loglik, rel=1e-12)
    assert np.max(np.abs(ref.gradient)) < 1e-8


@pytest.fixture
def panel() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(30), 6)
    x1, x2 = rng.normal(size=g.size), rng.normal(size=g.size)
    y = (rng.random(g.size) < 1 / (1 + np.exp(-(0.8 * x1 - 0.5 * x2)))).astype(int)
    return pd.DataFrame({"g": g, "y": y, "x1": x1, "x2": x2})


def test_explicit_constant_is_dropped_with_a_note(panel):
    base = mg.clogit("y ~ x1 + x2", panel, group="g", quiet=True)
    with_one = mg.clogit("y ~ 1 + x1 + x2", panel, group="g", quiet=True)
    without = mg.clogit("y ~ x1 + x2 - 1", panel, group="g", quiet=True)
    assert with_one.notes[0] == (
        "note: the constant is conditioned away with the effects of g; dropped from the formula."
    )
    assert without.notes == base.notes
    for res in (with_one, without):
        np.testing.assert_array_equal(res.params, base.params)
        assert "_cons" not in res.all_names


def test_collinear_and_constant_columns(panel):
    df = panel.assign(x3=panel["x1"] - 2 * panel["x2"], one=1.0, gconst=panel["g"] * 0.5)
    res = mg.clogit("y ~ x1 + one + x2 + gconst + x3", df, group="g", quiet=True)
    assert res.notes[-3:] == (
        "note: one omitted because of no within-group variance.",
        "note: gconst omitted because of no within-group variance.",
        "note: x3 omitted because of collinearity.",
    )
    assert res.names == ("x1", "x2")
    assert res.all_names == ("x1", "one", "x2", "gconst", "x3")
    lines = str(res.summary()).splitlines()
    assert "         one |          0  (omitted)" in lines
    assert "          x3 |          0  (omitted)" in lines


def test_missing_values_and_subset(panel):
    df = panel.astype({"g": float})
    df.loc[[0, 7], "g"] = np.nan
    df.loc[[3], "x1"] = np.nan
    res = mg.clogit("y ~ x1 + x2", df, group="g", subset="x2 > -1.5", quiet=True)
    assert (
        res.notes[0]
        == "note: 2 observations dropped because of missing values of the group variable g"
    )
    assert res.notes[1].startswith("note: 1 observation dropped because of missing values (x1 1)")
    kept = df.dropna()
    kept = kept[kept["x2"] > -1.5]
    assert res.nobs + res.n_obs_dropped == len(kept)


def test_log_and_notes_are_printed_unless_quiet(panel, capsys):
    mg.clogit("y ~ x1 + x2", panel, group="g")
    out = capsys.readouterr().out
    assert out.startswith("note: multiple positive outcomes within groups encountered.\n")
    assert "Iteration 0:   log likelihood = " in out
    mg.clogit("y ~ x1 + x2", panel, group="g", nolog=True)
    out = capsys.readouterr().out
    assert "note:" in out and "Iteration" not in out
    mg.clogit("y ~ x1 + x2", panel, group="g", quiet=True)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"formula": "y ~ x1"}, MixedGLMError, "needs the group variable whose effects"),
        ({"group": "gg"}, DataError, r"group variable 'gg' not found.*did you mean 'g'"),
        ({"formula": "y2 ~ x1"}, DataError, "outcome y2 must be coded 0/1 .* 2"),
        ({"formula": "never ~ x1"}, DataError, "never does not vary in any group"),
        ({"formula": "y ~ x1 + (1 | g)"}, FormulaError, "takes no random-effect terms"),
        ({"formula": "y ~ 1"}, FormulaError, "has no covariates"),
        ({"formula": "y ~ gconst"}, DataError, "no covariate is left"),
    ],
)
def test_bad_input_gets_a_clear_error(panel, kwargs, error, message):
    df = panel.assign(y2=panel["y"] * 2, never=0, gconst=panel["g"])
    args = {"formula": "y ~ x1", "group": "g"} | kwargs
    if kwargs == {"formula": "y ~ x1"}:
        args.pop("group")
    with pytest.raises(error, match=message):
        mg.clogit(args.pop("formula"), df, quiet=True, **args)


def test_poisson_bad_outcome(panel):
    with pytest.raises(DataError, match="must be greater than or equal to zero"):
        mg.xtpoisson_fe("yneg ~ x1", panel.assign(yneg=panel["y"] - 1), group="g", quiet=True)


def test_compare_shows_the_header_test_from_the_object_and_from_json():
    res = mg.clogit("y ~ x1 + x2 + x3", SIMPANEL, group="id", quiet=True)
    doc = res.to_dict()
    assert doc["chi2"]["type"] == "LR" and doc["wald"] is None
    assert doc["chi2"]["chi2"] == pytest.approx(res.lr_test.stat)
    table = str(mg.compare([res, doc], ["object", "json"]))
    chi2_row = next(line for line in table.splitlines() if " chi2 |" in line)
    assert chi2_row.count(f"{res.lr_test.stat:.4f}") == 2
