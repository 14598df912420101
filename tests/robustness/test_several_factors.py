"""Several grouping factors: options not available yet are refused by name (never silently
ignored), and the results offer the accessors, printing and HTML of one-factor fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.cli import main
from mixedglm.errors import MixedGLMError
from robustness.conftest import base_frame


@pytest.fixture(scope="module")
def nested() -> pd.DataFrame:
    data = base_frame(n_groups=40, size=8, seed=3)
    data["h"] = data["g"] // 4  # ten outer clusters of four inner ones
    data["w"] = 1 + data["g"] % 2
    return data


@pytest.fixture(scope="module")
def fit(nested):
    return mg.glmm("count ~ x + (1 | h/g)", nested, family="poisson", method="laplace", quiet=True)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"fweight": "w"}, "fweight"),
        ({"pweight": "w"}, "pweight"),
        ({"group_weights": {"h": "w"}}, "group_weights"),
    ],
)
def test_options_not_available_are_refused_by_name(nested, options, named):
    with pytest.raises(MixedGLMError, match=f"{named} with several grouping factors"):
        mg.glmm("y ~ x + (1 | h/g)", nested, method="laplace", quiet=True, **options)


def test_reml_with_several_factors_is_refused_for_a_glmm_and_with_weights(nested):
    # REML itself works with several factors (tests/multilevel/test_lmm_multilevel.py)
    with pytest.raises(MixedGLMError, match="reml=True is for linear"):
        mg.glmm("y ~ x + (1 | h) + (1 | f)", nested, family="poisson", reml=True, quiet=True)
    with pytest.raises(MixedGLMError, match="pweight with several grouping factors"):
        mg.glmm("yc ~ x + (1 | h/g)", nested, family="gaussian", reml=True, pweight="w",
                quiet=True)  # fmt: skip


def test_group_weights_must_be_a_dict(nested):
    with pytest.raises(MixedGLMError, match="group_weights must be a dict"):
        mg.glmm("y ~ x + (1 | g)", nested, group_weights="w", quiet=True)


def test_margins_of_a_poisson_fit_average_the_fixed_only_means(fit):
    got = fit.margins(marginal=False).loc["_cons", "estimate"]
    assert got == pytest.approx(fit.predict(kind="mu", fixedonly=True).mean(), rel=1e-12)
    assert fit.margins(dydx="x").loc["x", "se"] > 0


def test_fitted_values_and_residuals_follow_the_conditional_modes(fit, nested):
    mu = fit.predict(kind="mu")
    assert np.allclose(fit.fittedvalues.to_numpy(), mu.to_numpy())
    assert list(fit.fittedvalues.index) == list(nested.index)
    resid = nested["count"].to_numpy() - mu.to_numpy()
    assert np.allclose(fit.resid_response.to_numpy(), resid)
    assert np.allclose(fit.resid_pearson.to_numpy(), resid / np.sqrt(mu.to_numpy()))
    assert set(fit.ranef()) == {"h", "h:g"}
    assert fit.ranef()["h"].shape == (10, 1)


def test_varcorr_has_a_row_per_factor(fit):
    table = fit.varcorr()
    assert list(table["grp"]) == ["h", "h:g"]
    for k, name in enumerate(["h", "h:g"]):
        var = float(fit.sigma(name)[0, 0])
        assert table["vcov"].iloc[k] == pytest.approx(var)
        assert table["sdcor"].iloc[k] == pytest.approx(np.sqrt(var))


def test_print_repr_and_html_show_the_table(fit):
    text = str(fit)
    assert text == repr(fit) and "Mixed-effects" in text and "var(_cons)" in text
    html = fit._repr_html_()
    assert "<table" in html and "_cons" in html


def test_cli_refuses_plot_before_the_fit(nested, tmp_path, capsys):
    csv = tmp_path / "nested.csv"
    nested.to_csv(csv, index=False)
    plot = tmp_path / "re.png"
    args = ["fit", str(csv), "y ~ x + (1 | h/g)", "--laplace", "--nolog"]
    assert main([*args, "--plot", str(plot), "--style", "xt"]) == 2
    err = capsys.readouterr().err
    assert "--plot, --style xt: not available yet with several grouping factors" in err
    assert err.count("\n") == 1 and not plot.exists()


def test_odds_ratios_and_margins_with_several_factors(nested, tmp_path, capsys):
    """melogit, or and margins after it: the table exponentiates the fixed effects only
    (the variance blocks unchanged), on the CLI as in Python."""
    res = mg.glmm("y ~ x + (1 | h/g)", nested, method="laplace", quiet=True)
    text = str(res.summary(eform=True))
    assert "| Odds Ratio   Std. Err." in text
    assert "Note: Estimates are transformed only in the first equation." in text
    ratios = res.estimates(eform=True)
    assert ratios.loc["x", "estimate"] == pytest.approx(np.exp(res.params["x"]), rel=1e-12)
    assert ratios.loc["x", "se"] == pytest.approx(np.exp(res.params["x"]) * res.bse["x"])
    plain = str(res.summary())
    variance = [line for line in plain.splitlines() if "var(_cons)" in line]
    assert variance and all(line in text for line in variance)
    with pytest.raises(MixedGLMError, match="incidence-rate ratios"):
        res.summary(eform="irr")
    csv = tmp_path / "nested.csv"
    nested.to_csv(csv, index=False)
    args = ["fit", str(csv), "y ~ x + (1 | h/g)", "--laplace", "--nolog", "--or"]
    assert main([*args, "--margins", "dydx(x)"]) == 0
    out = capsys.readouterr().out
    assert "| Odds Ratio   Std. Err." in out and "Average marginal effects" in out
    effect = res.margins(dydx="x").loc["x", "estimate"]
    assert f"{effect:.7f}".lstrip("0") in out  # Stata's .1129724


def test_crossed_factors_default_to_laplace_and_refuse_explicit_quadrature(nested):
    crossed = "y ~ x + (1 | g) + (1 | f)"
    res = mg.glmm(crossed, nested, quiet=True)
    assert res.rule.is_laplace
    with pytest.raises(MixedGLMError, match="crossed"):
        mg.glmm(crossed, nested, nagq=7, quiet=True)


@pytest.mark.parametrize(
    ("formula", "family", "outcome", "said"),
    [
        ("y ~ x + (1 | h/g)", "binomial", 0, "'y' is 0 in every observation"),
        ("y ~ x + (1 | h) + (1 | f)", "binomial", 1, "'y' is 1 in every observation"),
        ("count ~ x + (1 | h/g)", "poisson", 0, "'count' is 0 in every observation"),
        ("yc ~ x + (1 | h) + (1 | f)", "gaussian", 2.5, "'yc' is 2.5 in every observation"),
    ],
)
def test_an_outcome_with_nothing_to_model_is_refused(nested, formula, family, outcome, said):
    """Before: the fit ran and returned a log likelihood of 0 and a constant of -26."""
    data = nested.assign(**{formula.split()[0]: outcome})
    with pytest.raises(MixedGLMError, match=said):
        mg.glmm(formula, data, family=family, method="laplace", quiet=True)


@pytest.mark.parametrize("random", ["(1 | h/g)", "(1 | h) + (1 | f)"])
def test_separation_is_noted_with_several_factors(nested, random):
    """Before: no note; the estimates of 27 with huge SEs were shown as they were."""
    rng = np.random.default_rng(4)
    sign = np.where(nested["y"] == 1, 1.0, -1.0)
    data = nested.assign(s=sign * rng.uniform(0.1, 1, len(nested)))
    res = mg.glmm(f"y ~ x + s + {random}", data, method="laplace", quiet=True)
    assert any("s predicts the outcome perfectly" in note for note in res.notes)
    # a combination of two covariates separates: the linear program's note
    data = nested.assign(s=sign - nested["x"])
    res = mg.glmm(f"y ~ x + s + {random}", data, method="laplace", quiet=True)
    assert any("x and s predict the outcome perfectly" in note for note in res.notes)


def test_an_sd_within_a_thousandth_of_its_standard_error_of_zero_is_on_the_boundary(
    monkeypatch,
):
    """A crossed fit whose SD stopped at 1.03e-6, above the absolute threshold of 1e-6,
    with a standard error of 0.12 (Newton held its Hessian from a scaled gradient of 10,
    as before): within 1e-3 standard errors of zero it is reported at zero with the note,
    and the log likelihood there is not lower."""
    import mixedglm.models.factor_params as fp
    import mixedglm.models.multilevel as ml

    from refdata import load_reference_data

    data = load_reference_data("tiny_crossed")  # a sweep's 250 x 2 rows crossed with 10
    monkeypatch.setattr(ml, "HOLD_CROSSED", 10.0)
    kw = {"family": "bernoulli", "quiet": True, "nolog": True}
    monkeypatch.setattr(fp, "BOUNDARY_Z", 0.0)
    before = mg.glmm("y ~ x + (1 | a) + (1 | b)", data, **kw)
    assert 1e-6 < before.params_all[3] < 1e-5 and not before.notes  # the miss
    monkeypatch.setattr(fp, "BOUNDARY_Z", 1e-3)
    res = mg.glmm("y ~ x + (1 | a) + (1 | b)", data, **kw)
    assert res.params_all[3] == 0.0
    assert any("estimated at zero" in note for note in res.notes)
    assert np.isnan(res.sd().loc[res.sd()["group"] == "b", "se"]).all()
    assert res.loglik >= before.loglik - 1e-9


def test_negligible_effects_by_size_or_by_standard_errors():
    """``factor_params.negligible_effects``: an SD below 1e-6, or every theta of its row
    of ``Lambda`` within 1e-3 standard errors of zero (with the Hessian); a correlated
    pair's second effect by both of its thetas."""
    from mixedglm.engines.covariance import CovarianceStructure
    from mixedglm.models.factor_params import negligible_effects

    one = CovarianceStructure("independent", ["_cons"])
    scales = np.ones(1)
    assert negligible_effects(one, scales, np.array([5e-7]))[0]
    assert not negligible_effects(one, scales, np.array([2e-6]))[0]
    assert negligible_effects(one, scales, np.array([2e-6]), np.array([[-1e4]]))[0]
    assert not negligible_effects(one, scales, np.array([2e-6]), np.array([[-1e12]]))[0]
    assert not negligible_effects(one, scales, np.array([2e-6]), np.array([[1e4]]))[0]
    pair = CovarianceStructure("unstructured", ["_cons", "x"])
    theta = np.array([0.8, 2e-6, 3e-6])  # Lambda rows: (0.8), (2e-6, 3e-6)
    hess = -np.diag([100.0, 1e4, 1e4])
    got = negligible_effects(pair, np.ones(2), theta, hess)
    rows = np.any(pair.basis()[:, 1, :] != 0, axis=1)
    np.testing.assert_array_equal(got, rows)
    hess[1, 1] = -1e12  # one theta of the row clearly away from zero
    assert not negligible_effects(pair, np.ones(2), theta, hess).any()
