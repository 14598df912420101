"""Negative binomial, gamma and ordinal models through the API: names and options, bad
input, predictions, the table, JSON and the command line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import mixedglm as mg
from mixedglm.cli import main
from mixedglm.errors import DataError, MixedGLMError
from mixedglm.families import get_family

from refdata import REFERENCE, load_reference_data

WINE = "rating ~ temp + contact + (1 | judge)"
SALAMANDERS = "count ~ mined_no + (1 | site)"


def fit(formula: str, data, **kw):
    return mg.glmm(formula, data, nolog=True, quiet=True, **kw)


@pytest.fixture(scope="module")
def wine_fit():
    return fit(WINE, load_reference_data("wine"), family="ordinal", nagq=1)


@pytest.fixture(scope="module")
def nb_fit():
    return fit(SALAMANDERS, load_reference_data("salamanders"), family="nbinomial", nagq=1)


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(30), 8)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + rng.normal(scale=0.4, size=30)[g]))
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": g})


# -- names and options --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "link", "dispersion", "expected"),
    [
        ("nbinomial", None, None, ("nbinomial", "log", "mean")),
        ("nbinomial constant", None, None, ("nbinomial", "log", "constant")),
        ("NBINOMIAL  mean", None, None, ("nbinomial", "log", "mean")),
        ("nbinomial", None, "constant", ("nbinomial", "log", "constant")),
        ("nbreg", "log", None, ("nbinomial", "log", "mean")),
        ("gamma", None, None, ("gamma", "log", "")),
        ("ordinal", None, None, ("ordinal", "logit", "")),
        ("ordinal", "cloglog", None, ("ordinal", "cloglog", "")),
        ("ologit", None, None, ("ordinal", "logit", "")),
        ("oprobit", "probit", None, ("ordinal", "probit", "")),
    ],
)
def test_family_names_and_options(name, link, dispersion, expected):
    fam = get_family(name, link, dispersion)
    assert (fam.name, fam.link, fam.dispersion) == expected


@pytest.mark.parametrize(
    ("name", "link", "dispersion", "message"),
    [
        ("nbinomial sometimes", None, None, "only nbinomial takes an option"),
        ("poisson constant", None, None, "only nbinomial takes an option"),
        ("nbinomial constant", None, "mean", "conflicts with dispersion='mean'"),
        ("poisson", None, "constant", "dispersion= is for the nbinomial family"),
        ("nbinomial", None, "quadratic", "dispersion must be 'mean' or 'constant'"),
        ("gamma", "identity", None, "link 'identity' is not available for family 'gamma'"),
        ("ordinal", "log", None, "link 'log' is not available for family 'ordinal'"),
        ("ologit", "probit", None, "implies link 'logit'"),
        ("tweedie", None, None, "unknown family 'tweedie'"),
    ],
)
def test_bad_family_options_are_refused(name, link, dispersion, message):
    with pytest.raises(MixedGLMError, match=message):
        get_family(name, link, dispersion)


def test_fisher_curvature_is_refused_for_the_new_families(counts):
    with pytest.raises(MixedGLMError, match="curvature='fisher' is for binomial and Poisson"):
        fit("y ~ x + (1 | g)", counts, family="nbinomial", nagq=1, curvature="fisher")


# -- bad input ------------------------------------------------------------------------------


def test_negative_and_fractional_counts_for_the_negative_binomial(counts):
    with pytest.raises(DataError, match=r"outcome 'x' has negative values \(.*nbinomial model"):
        fit("x ~ y + (1 | g)", counts, family="nbinomial")
    with pytest.raises(DataError, match=r"outcome 'c' has non-integer values \(0.5"):
        fit("c ~ x + (1 | g)", counts.assign(c=counts["y"] + 0.5), family="nbinomial constant")


def test_non_positive_outcome_for_gamma(counts):
    with pytest.raises(DataError, match=r"outcome 'y' has \d+ values <= 0 \(0\).*positive"):
        fit("y ~ x + (1 | g)", counts, family="gamma")
    bad = counts.assign(z=np.where(counts["x"] > 2, -1.5, 1.0 + counts["y"]))
    with pytest.raises(DataError, match=r"outcome 'z' has \d+ values? <= 0 \(-1.5\)"):
        fit("z ~ x + (1 | g)", bad, family="gamma")


def test_ordinal_outcome_with_a_single_category(counts):
    with pytest.raises(DataError, match=r"ordinal outcome 'one' has a single category \(3\)"):
        fit("one ~ x + (1 | g)", counts.assign(one=3), family="ordinal")


def test_ordinal_category_that_no_one_chose_is_named(counts):
    levels = ["low", "mid", "high", "extreme"]
    codes = np.minimum(counts["y"].to_numpy().astype(int), 2)
    cat = pd.Categorical.from_codes(codes, categories=levels, ordered=True)
    with pytest.raises(DataError, match=r"categor(y|ies) 'extreme' that no observation"):
        fit("r ~ x + (1 | g)", counts.assign(r=cat), family="ordinal")
    # the estimation sample counts: a category chosen only by dropped rows is empty too
    sub = counts.assign(r=cat, x=np.where(codes == 0, np.nan, counts["x"]))
    with pytest.raises(DataError, match=r"'low', 'extreme' that no observation"):
        fit("r ~ x + (1 | g)", sub, family="ordinal")


def test_ordinal_text_outcome_needs_an_order(counts):
    text = counts.assign(r=np.where(counts["y"] > 1, "high", "low"))
    with pytest.raises(DataError, match="ordinal outcome 'r' is text"):
        fit("r ~ x + (1 | g)", text, family="ordinal")


# -- the ordinal design ---------------------------------------------------------------------


def test_ordinal_model_has_no_constant_and_cut_points_in_order(wine_fit):
    assert "_cons" not in wine_fit.params.index
    assert wine_fit.family.categories == (1, 2, 3, 4, 5)
    cuts = [est for label, est, *_ in wine_fit.ancillary() if label.startswith("/cut")]
    assert len(cuts) == 4 and np.all(np.diff(cuts) > 0)
    assert wine_fit.n_params == 2 + 1 + 4


def test_ordinal_formula_without_constant_still_drops_a_dummy():
    """A full set of dummies is collinear with the cut points: one level is omitted, as
    with a constant, and the fit is the same."""
    wine = load_reference_data("wine")
    a = fit("rating ~ temp + contact + (1 | judge)", wine, family="ordinal", nagq=1)
    b = fit("rating ~ 0 + temp + contact + (1 | judge)", wine, family="ordinal", nagq=1)
    assert b.design.omitted and b.loglik == pytest.approx(a.loglik, abs=1e-9)


def test_ordinal_categorical_outcome_keeps_its_order():
    wine = load_reference_data("wine")
    labels = ["none", "little", "some", "much", "very much"]
    cat = pd.Categorical.from_codes(wine["rating"] - 1, categories=labels, ordered=True)
    res = fit(WINE, wine.assign(rating=cat), family="ordinal", nagq=1)
    numeric = fit(WINE, wine, family="ordinal", nagq=1)
    assert res.family.categories == tuple(labels)
    assert res.loglik == pytest.approx(numeric.loglik, abs=1e-9)


def test_ordinal_two_categories_is_the_logit_model():
    """With two categories the ordinal logit is melogit with cut = -constant."""
    df = load_reference_data("contraception").iloc[:600]
    formula = "use ~ urban + age + (1 | district)"
    logit = fit(formula, df, family="bernoulli", nagq=1)
    ologit = fit(formula, df, family="ologit", nagq=1)
    assert ologit.loglik == pytest.approx(logit.loglik, abs=1e-8)
    assert ologit.params["age"] == pytest.approx(logit.params["age"], rel=1e-6)
    (cut,) = ologit.ancillary()
    assert cut[1] == pytest.approx(-logit.params["_cons"], rel=1e-6)
    assert cut[2] == pytest.approx(logit.bse["_cons"], rel=1e-5)


def test_ordinal_icc_uses_the_latent_logistic_variance(wine_fit):
    var = wine_fit.varcomp()[0].estimate
    assert wine_fit.icc()["icc"].iloc[0] == pytest.approx(var / (var + np.pi**2 / 3))


# -- predictions ----------------------------------------------------------------------------


def test_ordinal_category_probabilities(wine_fit):
    cond = wine_fit.predict(kind="pr")
    marg = wine_fit.predict(kind="pr", conditional=False)
    assert list(cond.columns) == [1, 2, 3, 4, 5] and cond.shape == (72, 5)
    assert np.allclose(cond.sum(axis=1), 1.0) and np.allclose(marg.sum(axis=1), 1.0)
    # conditional: F(c_k - eta) differences at the predicted linear predictor
    eta = wine_fit.predict(kind="eta")
    cuts = np.r_[-np.inf, [e for _, e, *_ in wine_fit.ancillary()], np.inf]
    row = 5
    expected = np.diff(special.expit(cuts - eta.iloc[row]))
    assert cond.iloc[row].to_numpy() == pytest.approx(expected, rel=1e-12)
    # marginal: integrated over b ~ N(0, var) (brute force)
    xb = wine_fit.predict(kind="xb").iloc[row]
    sd = np.sqrt(wine_fit.varcomp()[0].estimate)
    for k in range(5):
        value, _ = integrate.quad(
            lambda b, k=k: np.diff(special.expit(cuts - xb - b))[k] * stats.norm.pdf(b, 0, sd),
            -12 * sd,
            12 * sd,
            epsabs=1e-13,
        )
        assert marg.iloc[row, k] == pytest.approx(value, abs=1e-9)


def test_ordinal_has_no_mean_and_pr_is_for_ordinal(wine_fit, nb_fit):
    with pytest.raises(MixedGLMError, match="kind='pr'"):
        wine_fit.predict(kind="mu")
    with pytest.raises(MixedGLMError, match="kind='pr' is for ordinal models"):
        nb_fit.predict(kind="pr")


def test_count_and_gamma_means_through_the_log_link(nb_fit):
    eta = nb_fit.predict(kind="eta")
    assert nb_fit.predict(kind="mu").to_numpy() == pytest.approx(np.exp(eta), rel=1e-12)
    xb = nb_fit.predict(kind="xb")
    var = nb_fit.varcomp()[0].estimate
    marginal = nb_fit.predict(kind="mu", conditional=False)
    assert marginal.to_numpy() == pytest.approx(np.exp(xb + var / 2), rel=1e-12)


# -- table, JSON, CLI -----------------------------------------------------------------------


def test_negative_binomial_table_as_menbreg(nb_fit):
    text = str(nb_fit.summary())
    lines = text.splitlines()
    assert lines[0].startswith("Mixed-effects nbinomial regression")
    assert lines[1] == "Overdispersion:            mean"
    assert "    /lnalpha |   .4477783   .1176981" in text
    assert "       alpha |   1.564832   .1841778" in text
    assert "LR test vs. nbinomial model: chibar2(01) = 18.00" in text
    with pytest.raises(ValueError, match="style='xt' has no Stata counterpart"):
        nb_fit.summary(style="xt")


def test_gamma_and_ordinal_tables():
    cake = fit("angle ~ recipe + temp_c + (1 | batch)", load_reference_data("cake"), family="gamma")
    text = str(cake.summary())
    assert text.splitlines()[:3] == [
        "Mixed-effects GLM                               Number of obs     =        270",
        "Family:                   gamma",
        "Link:                       log",
    ]
    assert "       /logs |  -3.95707" in text and "LR test vs. gamma model" in text
    wine = fit(WINE, load_reference_data("wine"), family="oprobit", nagq=1)
    text = str(wine.summary())
    assert text.startswith("Mixed-effects oprobit regression")
    assert "_cons" not in text.split("judge")[0]
    assert "       /cut4 |" in text and "LR test vs. oprobit model" in text
    xt = str(wine.summary(style="xt"))
    assert xt.startswith("Random-effects ordered probit regression") and "/cut1" in xt


def test_json_document_carries_the_family_parameters(wine_fit, nb_fit):
    doc = json.loads(json.dumps(nb_fit.to_dict()))
    assert (doc["family"], doc["link"], doc["dispersion"]) == ("nbinomial", "log", "mean")
    assert [a["name"] for a in doc["aux"]] == ["/lnalpha", "alpha"]
    assert doc["aux"][0]["estimate"] == pytest.approx(0.4477783, abs=1e-6)
    doc = json.loads(json.dumps(wine_fit.to_dict()))
    assert doc["categories"] == [1, 2, 3, 4, 5] and "dispersion" not in doc
    assert [a["name"] for a in doc["aux"]] == ["/cut1", "/cut2", "/cut3", "/cut4"]
    assert [c["term"] for c in doc["coef"]] == ["temp[warm]", "contact[yes]"]
    frame = wine_fit.to_frame()
    assert list(frame.loc[frame["part"] == "aux"].index) == ["/cut1", "/cut2", "/cut3", "/cut4"]


def test_cli_fits_the_new_families(capsys):
    owls = str(REFERENCE / "data" / "owls.csv")
    args = ["fit", owls, "SiblingNegotiation ~ FoodTreatment + SexParent + (1 | Nest)"]
    args += ["--family", "nbinomial", "--dispersion", "constant", "--exposure", "BroodSize"]
    assert main([*args, "--laplace", "--json", "-"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["dispersion"] == "constant" and doc["aux"][0]["name"] == "/lndelta"
    assert "Overdispersion:        constant" in captured.err
    wine = str(REFERENCE / "data" / "wine.csv")
    assert main(["fit", wine, WINE, "--family", "ordinal", "--link", "probit", "--nolog"]) == 0
    assert "Mixed-effects oprobit regression" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_and_exit_2(capsys):
    cake = str(REFERENCE / "data" / "cake.csv")
    code = main(["fit", cake, "temp_c ~ angle + (1 | batch)", "--family", "gamma"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "outcome 'temp_c'" in err[0] and "positive" in err[0]


def test_integer_ordinal_outcome_with_a_gap_gets_a_note(counts):
    gap = counts.assign(r=np.choose(np.minimum(counts["y"].astype(int), 2), [1, 2, 4]))
    res = fit("r ~ x + (1 | g)", gap, family="ordinal", nagq=1)
    assert res.family.categories == (1, 2, 4)
    assert any("takes no value 3" in note for note in res.notes)
