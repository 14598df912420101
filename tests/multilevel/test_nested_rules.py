"""Each nested level's own quadrature: points per level (``nagq={factor: points}``, the
command line's ``--nagq comm=12,comm:mom=7``) and mode-curvature grids (``mcaghermite``),
against the scalar rule, the brute-force nested integral and the one-factor engine; bad
per-level counts refused with messages that name the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mixedglm as mg
from mixedglm.cli import main
from mixedglm.design.multilevel import build_multilevel_design
from mixedglm.engines.nested_aghq import NestedAGHQEngine
from mixedglm.errors import MixedGLMError
from mixedglm.families import Family
from mixedglm.formula import parse_formula
from mixedglm.models.multilevel import multilevel_rule

from nested_data import brute_force_nested as _brute_force
from nested_data import simulate_nested as _sim
from refdata import load_reference_data

BERNOULLI = Family("bernoulli", "logit")
FORMULA = "yb ~ x + (1 | top/mid)"
X = np.array([0.5, 0.2, 0.8, 0.6])  # [x, _cons, sd(top), sd(top>mid)]


def _engine(data, method: str, nagq: object) -> NestedAGHQEngine:
    design = build_multilevel_design(parse_formula(FORMULA), data, BERNOULLI)
    return NestedAGHQEngine(design, BERNOULLI, multilevel_rule(design, method, nagq, None))


def test_equal_counts_per_level_equal_the_scalar_rule():
    data = _sim(seed=5, n_top=12)
    one = mg.glmm(FORMULA, data, nagq=5, nolog=True, quiet=True)
    each = mg.glmm(FORMULA, data, nagq={"top": 5, "top>mid": 5}, nolog=True, quiet=True)
    assert each.loglik == one.loglik
    np.testing.assert_array_equal(each.params_all, one.params_all)
    np.testing.assert_array_equal(each.cov_all, one.cov_all)
    assert each.rule.levels == (("top", 5), ("top:mid", 5))


def test_points_per_level_in_the_integral_and_the_output():
    data = _sim()
    want = _brute_force(data, "yb", "bernoulli", 0.2, 0.5, 0.8, 0.6)
    uneven = _engine(data, None, {"top": 20, "top:mid": 16})
    assert uneven.points == [20, 16] and list(uneven.tree.nk) == [20, 16]
    assert uneven.loglik(X) == pytest.approx(want, abs=1e-6)
    res = mg.glmm(FORMULA, _sim(seed=5, n_top=12), nagq={"top": 9, "top:mid": 5}, nolog=True)
    text = str(res.summary())
    assert "Integration pts.  =        9/5" in text
    rows = [line for line in text.splitlines() if line.strip().startswith(("top |", "mid |"))]
    assert [row.split()[-1] for row in rows] == ["9", "5"]
    doc = res.to_dict()
    assert [g["nagq"] for g in doc["groups"].values()] == [9, 5] and doc["nagq"] == 9


def test_mode_curvature_grids_settle_on_the_nested_integral():
    """mcaghermite's log-likelihood at fixed parameters nears the brute-force integral as
    the points grow, as mvaghermite's does; two points per level (one would be Laplace's
    node) are a valid mode-curvature rule."""
    data = _sim()
    want = _brute_force(data, "yb", "bernoulli", 0.2, 0.5, 0.8, 0.6)
    errors = {}
    for n in (3, 7, 12, 20):
        mc = _engine(data, "mcaghermite", n).loglik(X)
        mv = _engine(data, "mvaghermite", n).loglik(X)
        errors[n] = (abs(mc - want), abs(mv - want))
    assert errors[20][0] < 1e-6 and errors[20][1] < 1e-6
    assert errors[12][0] < errors[3][0] and errors[12][0] < 1e-4
    assert np.isfinite(_engine(data, "mcaghermite", {"top": 7, "top:mid": 2}).loglik(X))
    # its gradient is the fixed-grid one: close to the exact one, no grid movement
    engine = _engine(data, "mcaghermite", 12)
    ev = engine.evaluate(X, 2)
    h = 1e-5
    fd = [(engine.loglik(X + h * e) - engine.loglik(X - h * e)) / (2 * h) for e in np.eye(4)]
    np.testing.assert_allclose(ev.gradient, fd, atol=1e-4)


def test_mode_curvature_with_zero_inner_variance_equals_one_factor_fit():
    data = _sim(seed=7, n_top=10)
    one = mg.glmm("yb ~ x + (1 | top)", data, method="mcaghermite", nolog=True, quiet=True)
    engine = _engine(data, "mcaghermite", 7)
    x = np.concatenate([one.params_all, [0.0]])
    assert engine.loglik(x) == pytest.approx(one.loglik, abs=1e-8)


def test_mode_curvature_fit_agrees_with_mean_variance():
    data = _sim(seed=2, n_top=30, n_mid=4, per=3)
    fits = {
        m: mg.glmm(FORMULA, data, method=m, nagq=12, nolog=True, quiet=True)
        for m in ("mvaghermite", "mcaghermite")
    }
    mc, mv = fits["mcaghermite"], fits["mvaghermite"]
    assert mc.opt.message == "converged" and mc.method == "mcaghermite"
    assert abs(mc.loglik - mv.loglik) < 1e-4
    np.testing.assert_allclose(mc.params_all, mv.params_all, atol=1e-3)
    assert "Integration method: mcaghermite" in str(mc.summary())
    assert not any("did not converge" in note for note in mc.notes)


@pytest.mark.slow
def test_guimmun_mode_curvature_and_mean_variance_agree():
    """guImmun (three levels, small binary units): the two grids' log-likelihoods at the
    same parameters draw together as the points grow (mode-curvature grids converge more
    slowly here: 0.27 apart at 7 points, 0.01 at 12, 3e-4 at 20); the mcaghermite fit
    converges, near the 12-point mvaghermite fit (Rodriguez's: -1323.9618)."""
    data = load_reference_data("guimmun")
    formula = (
        "immun ~ kid2p + mom25p + C(ord) + C(ethn) + C(momEd) + C(husEd) + momWork + rural"
        " + pcInd81 + (1 | comm/mom)"
    )
    mv = mg.glmm(formula, data, nagq=12, nolog=True, quiet=True)
    gaps = []
    for n in (7, 12, 20):
        pair = [
            NestedAGHQEngine(mv.design, mv.family, multilevel_rule(mv.design, m, n, None))
            for m in ("mvaghermite", "mcaghermite")
        ]
        gaps.append(abs(pair[0].loglik(mv.params_all) - pair[1].loglik(mv.params_all)))
    assert gaps[2] < gaps[1] < gaps[0] and gaps[2] < 1e-3
    mc = mg.glmm(formula, data, method="mcaghermite", nagq=12, nolog=True, quiet=True)
    assert mc.opt.message == "converged"  # the fixed-grid score's zero
    assert abs(mc.loglik - mv.loglik) < 0.02
    np.testing.assert_allclose(mc.params, mv.params, atol=0.02)


BAD = [
    ({"top": 7, "nosuch": 7}, None, r"no grouping factor 'nosuch'.*'top', 'top:mid'"),
    ({"top": 7}, None, r"no count for 'top:mid'"),
    ({"top": 7, "top:mid": 7, "top>mid": 5}, None, r"'top:mid' is given twice"),
    ({"top": 7, "top:mid": 2.5}, None, r"nagq\['top:mid'\] must be a positive integer"),
    ({"top": 7, "top:mid": 0}, None, r"nagq\['top:mid'\] must be a positive integer"),
    ({"top": 7, "top:mid": "many"}, None, r"nagq\['top:mid'\] must be a positive integer"),
    ({"top": 7, "top:mid": 2}, None, r"top:mid=2 is too few points for mvaghermite"),
    ({"top": 1, "top:mid": 7}, "mcaghermite", r"top=1 is too few points for mcaghermite"),
    ({"top": 7, "top:mid": 7}, "laplace", r"nagq per level is for quadrature"),
    ({}, None, r"nagq per level is empty"),
]


@pytest.mark.parametrize("nagq,method,message", BAD)
def test_bad_counts_per_level_are_refused(nagq, method, message):
    data = _sim(seed=5, n_top=4)
    with pytest.raises(MixedGLMError, match=message):
        mg.glmm(FORMULA, data, method=method, nagq=nagq, nolog=True, quiet=True)


def test_counts_per_level_need_nested_factors():
    data = _sim(seed=5, n_top=4)
    with pytest.raises(MixedGLMError, match="one: give one number"):
        mg.glmm("yb ~ x + (1 | top)", data, nagq={"top": 7}, nolog=True, quiet=True)
    data["other"] = np.arange(len(data)) % 5
    with pytest.raises(MixedGLMError, match="crossed"):
        mg.glmm("yb ~ x + (1 | top) + (1 | other)", data, nagq={"top": 7, "other": 7}, quiet=True)


def test_command_line_points_per_level(tmp_path, capsys):
    path = tmp_path / "sim.csv"
    _sim(seed=5, n_top=12).to_csv(path, index=False)
    target = tmp_path / "fit.json"
    args = ["fit", str(path), FORMULA, "--nagq", "top=9,top:mid=5", "--json", str(target)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Fitting full model (mvaghermite, points per level: top 9, top>mid 5):" in out
    doc = json.loads(target.read_text())
    assert [g["nagq"] for g in doc["groups"].values()] == [9, 5]
    assert main(["fit", str(path), FORMULA, "--nagq", "top=9,nosuch=5", "--nolog"]) == 2
    assert "no grouping factor 'nosuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", str(path), FORMULA, "--nagq", "top9"])
    assert "factor=points pairs" in capsys.readouterr().err
