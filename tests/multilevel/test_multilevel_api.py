"""Formulas, designs, output and post-estimation with several grouping factors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.cli import main
from mixedglm.errors import DataError, FormulaError, MixedGLMError
from mixedglm.formula import parse_formula

from refdata import REFERENCE, load_reference_data

MMMEC = "deaths ~ uvb + (1 | nation/region)"


@pytest.fixture(scope="module")
def mmmec():
    return load_reference_data("mmmec")


@pytest.fixture(scope="module")
def fit(mmmec):
    return mg.glmm(
        MMMEC, mmmec, family="poisson", exposure="expected", nagq=1, nolog=True, quiet=True
    )


def test_formula_nesting_and_interaction_operators():
    parsed = parse_formula("y ~ x + (1 + x | a/b/c) + (1 || d:e)")
    assert [t.group for t in parsed.random] == ["a", "a:b", "a:b:c", "d:e"]
    assert [t.text for t in parsed.random][:3] == [
        "(1 + x | a)",
        "(1 + x | a:b)",
        "(1 + x | a:b:c)",
    ]
    assert parsed.random[3].factors == ("d", "e") and not parsed.random[3].correlated
    assert parsed.groups == ("a", "a:b", "a:b:c", "d:e")


@pytest.mark.parametrize(
    "formula,words",
    [
        ("y ~ x + (1 | a/a)", "names a column twice"),
        ("y ~ x + (1 | a/)", "not a column name"),
        ("y ~ x + (1 | a + b)", "not a column name"),
    ],
)
def test_bad_grouping_expressions(formula, words):
    with pytest.raises(FormulaError, match=words):
        parse_formula(formula)


def test_nested_design_output_and_json(fit):
    assert fit.design.kind == "nested"
    text = str(fit.summary())
    assert "Group Variable" in text and "No. of" in text
    assert "Random effects: nested" in text
    lines = text.splitlines()
    assert any(line.split()[:2] == ["nation", "|"] and "9" in line for line in lines)
    assert any(line.split()[:2] == ["region", "|"] and "78" in line for line in lines)
    assert "nation>region" in text and "var(_cons)" in text
    assert "LR test vs. Poisson model: chi2(2)" in text
    assert "conservative" in text
    doc = json.loads(json.dumps(fit.to_dict()))
    assert set(doc["groups"]) == {"nation", "nation:region"}
    assert doc["groups"]["nation:region"]["label"] == "nation>region"
    assert doc["groups"]["nation"]["n"] == 9 and doc["groups"]["nation:region"]["n"] == 78
    assert [r["group"] for r in doc["random"]] == ["nation", "nation>region"]
    assert doc["random_effects"] == "nested"
    assert doc["loglik"] == pytest.approx(fit.loglik)


def test_icc_is_level_wise(fit, mmmec):
    with pytest.raises(MixedGLMError, match="poisson"):
        fit.icc()
    data = mmmec.assign(high=(mmmec["deaths"] > mmmec["expected"]).astype(int))
    res = mg.glmm("high ~ uvb + (1 | nation/region)", data, nagq=1, nolog=True, quiet=True)
    icc = res.icc()
    v1, v2 = res.sigma("nation")[0, 0], res.sigma("nation:region")[0, 0]
    total = v1 + v2 + np.pi**2 / 3
    assert list(icc.index) == ["nation", "nation>region"]
    np.testing.assert_allclose(icc["icc"], [v1 / total, (v1 + v2) / total], rtol=1e-12)
    assert np.all(icc["se"] > 0)


def test_random_effects_and_predictions_by_factor(fit, mmmec):
    effects = fit.random_effects()
    assert set(effects) == {"nation", "nation:region"}
    assert effects["nation"].shape == (9, 2)
    assert effects["nation:region"].shape == (78, 2)
    long = fit.random_effects_long()
    assert len(long) == 87 and set(long["factor"]) == {"nation", "nation:region"}
    xb = fit.predict(kind="xb")
    eta_all = fit.predict(kind="eta")
    eta_top = fit.predict(kind="eta", factors=["nation"])
    fixed = fit.predict(kind="eta", fixedonly=True)
    np.testing.assert_allclose(fixed, xb)
    # by hand: xb + b_nation + b_region
    nat = effects["nation"]["_cons"].reindex(mmmec["nation"]).to_numpy()
    keys = mmmec["nation"].astype(str) + ":" + mmmec["region"].astype(str)
    reg = effects["nation:region"]["_cons"].reindex(keys).to_numpy()
    np.testing.assert_allclose(eta_top, xb + nat, atol=1e-12)
    np.testing.assert_allclose(eta_all, xb + nat + reg, atol=1e-12)
    # new data: a new region gets 0 for its own effect but keeps its nation's
    new = mmmec.iloc[:3].assign(region=[999, 999, 999])
    pred = fit.predict(new, kind="eta")
    np.testing.assert_allclose(pred, xb.iloc[:3] + nat[:3], atol=1e-12)
    mu = fit.predict(new)
    np.testing.assert_allclose(mu, np.exp(pred), rtol=1e-12)


def test_crossed_default_is_laplace_and_quadrature_is_refused(mmmec):
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {
            "s": np.repeat(np.arange(30), 8),
            "i": np.tile(np.arange(8), 30),
            "x": rng.normal(size=240),
        }
    )
    data["y"] = rng.binomial(1, 0.5, 240)
    res = mg.glmm("y ~ x + (1 | s) + (1 | i)", data, nolog=True, quiet=True)
    assert res.design.kind == "crossed" and res.method == "laplace"
    assert "Random effects: crossed" in str(res.summary())
    with pytest.raises(MixedGLMError, match="crossed"):
        mg.glmm("y ~ x + (1 | s) + (1 | i)", data, nagq=12, nolog=True, quiet=True)
    # mode-curvature quadrature is for nested factors (tests/multilevel/test_nested_rules.py)
    with pytest.raises(MixedGLMError, match=r"crossed.*method='laplace'"):
        mg.glmm("y ~ x + (1 | s) + (1 | i)", data, method="mcaghermite", nolog=True, quiet=True)


def test_bad_input_names_the_variable(mmmec):
    with pytest.raises(DataError, match="'nations'"):
        mg.glmm("deaths ~ uvb + (1 | nations/region)", mmmec, family="poisson", nagq=1)
    one = mmmec.assign(k=1)
    with pytest.raises(DataError, match=r"'k'.*single level"):
        mg.glmm("deaths ~ uvb + (1 | k) + (1 | region)", one, family="poisson", nagq=1)
    with pytest.raises(DataError, match=r"random slope on 'uvb'.*'county'"):
        mg.glmm("deaths ~ uvb + (1 | nation) + (1 + uvb | county)", mmmec, family="poisson", nagq=1)


def test_cli_fit_with_reffects(tmp_path, capsys):
    out = tmp_path / "re.csv"
    doc = tmp_path / "fit.json"
    code = main(
        [
            "fit",
            str(REFERENCE / "data" / "mmmec.csv"),
            MMMEC,
            "--family",
            "poisson",
            "--exposure",
            "expected",
            "--laplace",
            "--nolog",
            "--reffects",
            str(out),
            "--json",
            str(doc),
        ]
    )
    assert code == 0
    assert "nation>region" in capsys.readouterr().out
    frame = pd.read_csv(out)
    assert list(frame.columns[:2]) == ["factor", "level"]
    assert len(frame) == 87
    assert set(json.loads(doc.read_text())["groups"]) == {"nation", "nation:region"}
