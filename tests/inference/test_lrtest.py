"""mg.lrtest and ``mixedglm lrtest``: statistic, boundary mixtures, notes and refusals."""

from __future__ import annotations

import json

import pytest
from scipy import stats

import mixedglm as mg
from inference_data import fit
from mixedglm.cli import main
from mixedglm.errors import MixedGLMError
from mixedglm.inference.lrtest import CONSERVATIVE_NOTE, NotNestedError


@pytest.fixture(scope="module")
def fits(panel):
    return {
        "ri": fit("y ~ x + d + (1 | g)", panel),
        "small": fit("y ~ x + (1 | g)", panel),
        "ind": fit("y ~ x + d + (1 + x || g)", panel),
        "uns": fit("y ~ x + d + (1 + x | g)", panel),
    }


def test_one_variance_on_the_boundary_is_chibar2(fits):
    res = mg.lrtest(fits["ri"], fits["ind"])
    stat = 2 * (fits["ind"].loglik - fits["ri"].loglik)
    assert res.kind == "chibar2" and res.df == 1
    assert res.stat == pytest.approx(stat, abs=1e-9)
    assert res.p == pytest.approx(0.5 * stats.chi2.sf(stat, 1), rel=1e-12)
    assert "mixture" in res.note
    text = str(res)
    assert "LR chibar2(01)" in text and "Prob >= chibar2" in text


def test_several_components_are_conservative(fits):
    res = mg.lrtest(fits["ri"], fits["uns"])
    stat = 2 * (fits["uns"].loglik - fits["ri"].loglik)
    assert (res.kind, res.df) == ("chi2", 2)
    assert res.p == pytest.approx(stats.chi2.sf(stat, 2), rel=1e-12)
    assert res.note == CONSERVATIVE_NOTE
    assert "conservative" in str(res)


def test_a_covariance_is_interior_and_fixed_effects_have_no_note(fits):
    cov = mg.lrtest(fits["ind"], fits["uns"])
    assert (cov.kind, cov.df, cov.note) == ("chi2", 1, "")
    fixed = mg.lrtest(fits["small"], fits["ri"])
    stat = 2 * (fits["ri"].loglik - fits["small"].loglik)
    assert (fixed.df, fixed.note) == (1, "")
    assert fixed.p == pytest.approx(stats.chi2.sf(stat, 1), rel=1e-12)
    assert "LR chi2(1)" in str(fixed) and "(Assumption: A nested in B)" in str(fixed)


def test_either_order_is_accepted(fits):
    a, b = mg.lrtest(fits["small"], fits["ri"]), mg.lrtest(fits["ri"], fits["small"])
    assert (a.stat, a.df, a.p) == (b.stat, b.df, b.p)
    assert "(Assumption: B nested in A)" in str(b)


def test_different_samples_are_refused(panel, fits):
    fewer = fit("y ~ x + d + (1 | g)", panel.iloc[:-8])
    with pytest.raises(NotNestedError, match="observations differ"):
        mg.lrtest(fewer, fits["ind"])
    shifted = panel.copy()
    shifted.index = shifted.index + 1000  # same size, other rows
    other = fit("y ~ x + d + (1 + x || g)", shifted)
    with pytest.raises(NotNestedError, match="different rows"):
        mg.lrtest(fits["ri"], other)


def test_same_parameter_count_and_foreign_coefficients_are_refused(panel, fits):
    with pytest.raises(NotNestedError, match="same number of parameters"):
        mg.lrtest(fits["ri"], fits["ri"])
    other = fit("y ~ C(f) + (1 | g)", panel)
    with pytest.raises(NotNestedError, match="not nested"):
        mg.lrtest(fits["small"], other)


def test_different_kinds_and_robust_fits_are_refused(panel, fits):
    fe = mg.clogit("y ~ x + d", panel, group="g", quiet=True, nolog=True)
    with pytest.raises(NotNestedError, match="different kinds"):
        mg.lrtest(fe, fits["ri"])
    robust = fit("y ~ x + d + (1 + x || g)", panel, vce="robust")
    with pytest.raises(MixedGLMError, match="robust"):
        mg.lrtest(fits["ri"], robust)


def test_cli_lrtest_reads_two_documents(tmp_path, capsys, fits):
    a, b = tmp_path / "ri.json", tmp_path / "ind.json"
    a.write_text(json.dumps(fits["ri"].to_dict()))
    b.write_text(json.dumps(fits["ind"].to_dict()))
    assert main(["lrtest", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "(Assumption: ri nested in ind)" in out
    assert f"{mg.lrtest(fits['ri'], fits['ind']).stat:.2f}" in out
    assert main(["lrtest", str(a), str(a)]) == 2
    assert "same number of parameters" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["lrtest", str(a), str(bad)]) == 2
