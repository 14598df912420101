"""The compact table as exact text from fixed numbers (the seed's xthybrid estimates), its
options, the tests' text, compare() of several models, and the JSON route to compare()."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mixedglm as mg
from mixedglm.errors import MixedGLMError
from mixedglm.report.compact import compact_number

from fixed_results import seed_like_results

SEED = Path(__file__).parent.parent / "report" / "seed_output.txt"


def _seed_hybrid_block() -> list[str]:
    lines = [line.rstrip() for line in SEED.read_text().splitlines()]
    i = lines.index("Hybrid model. Family: binomial. Link: logit.")
    j = next(k for k in range(i, len(lines)) if lines[k].startswith("Level 1:"))
    return lines[i : j + 1]


def test_the_seeds_table_character_by_character(seed_hybrid):
    assert seed_hybrid.table(star=True).splitlines() == _seed_hybrid_block()


def test_the_seeds_table_exact_text(seed_hybrid):
    expected = """\
Hybrid model. Family: binomial. Link: logit.
+--------------------------------------+
|             Variable |     model     |
|----------------------+---------------|
| topq                 |               |
|            R__female |    -0.1694*** |
|     R__socialscience |     0.0924*** |
|               R__usa |     0.1860*** |
|          W__nauthors |     0.0824*** |
|            W__npages |     0.0106*** |
|             W__nrefs |     0.0068*** |
|           W__jifperc |     0.0388*** |
|       W__careerstage |    -0.0534*** |
|          B__nauthors |     0.0207*** |
|            B__npages |     0.0428*** |
|             B__nrefs |     0.0071*** |
|           B__jifperc |     0.0518*** |
|       B__careerstage |    -0.0063*** |
|                _cons |    -5.1434*** |
|----------------------+---------------|
|        var(_cons[id])|               |
|                _cons |     0.4649*** |
|----------------------+---------------|
| Statistics           |               |
|                   ll | -2.088e+05    |
|                 chi2 | 37783.1969    |
|                    p |     0.0000    |
|                  aic |  4.177e+05    |
|                  bic |  4.178e+05    |
+--------------------------------------+
   legend: * p<.05; ** p<.01; *** p<.001
Level 1: 374334 units. Level 2: 14129 units."""
    assert seed_hybrid.table(star=True) == expected
    # without stars: the same table, blanks where the stars were, no legend
    plain = [line.replace("***", "   ") for line in expected.splitlines() if "legend" not in line]
    assert str(seed_hybrid) == "\n".join(plain)


def test_se_t_p_rows_and_chosen_statistics(seed_cre):
    text = seed_cre.table(se=True, t=True, p=True, stats=("ll", "N", "N_g", "df_m", "rank"))
    lines = text.splitlines()
    assert lines[0] == "Correlated random effects model. Family: binomial. Link: logit."
    assert lines[4:14] == [
        "| topq                 |               |",
        "|            R__female |    -0.1694    |",
        "|                      |     0.0009    |",
        "|                      |    -191.27    |",
        "|                      |     0.0000    |",
        "|     R__socialscience |     0.0924    |",
        "|                      |     0.0092    |",
        "|                      |      10.00    |",
        "|                      |     0.0000    |",
        "|               R__usa |     0.1860    |",
    ]
    assert "|          D__nauthors |     0.0207    |" in lines
    assert lines[-15:] == [
        "|        var(_cons[id])|               |",
        "|                _cons |     0.4649    |",
        "|                      |     0.0136    |",
        "|                      |      34.09    |",
        "|                      |     0.0000    |",
        "|----------------------+---------------|",
        "| Statistics           |               |",
        "|                   ll | -2.088e+05    |",
        "|                    N |     374334    |",
        "|                  N_g |      14129    |",
        "|                 df_m |         13    |",
        "|                 rank |         15    |",
        "+--------------------------------------+",
        "                        legend: b/se/t/p",
        "Level 1: 374334 units. Level 2: 14129 units.",
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (-208815.0, "-2.088e+05"),
        (37783.1969, "37783.1969"),
        (0.0, "0.0000"),
        (417660.0, "4.177e+05"),
        (-0.1694, "-0.1694"),
        (-12345.6789, "-1.235e+04"),
        (99999.99991, "99999.9999"),
        (math.nan, "."),
        (None, "."),
    ],
)
def test_numbers_as_the_seed_prints_them(value, text):
    assert compact_number(value) == text


def test_tests_text_against_a_hand_computation(seed_hybrid, seed_cre):
    b = dict(zip(seed_hybrid.params.index, seed_hybrid.params, strict=True))
    se = dict(zip(seed_hybrid.params.index, seed_hybrid.bse, strict=True))
    lines = ["Tests of the random effects assumption:"]
    chi2s = []
    for v in ("nauthors", "npages", "nrefs", "jifperc", "careerstage"):
        chi2 = (b[f"B__{v}"] - b[f"W__{v}"]) ** 2 / (se[f"B__{v}"] ** 2 + se[f"W__{v}"] ** 2)
        chi2s.append(chi2)
        lines.append(f"  _b[B__{v}] = _b[W__{v}]; p-value: {stats.chi2.sf(chi2, 1):.4f}")
    # the covariance matrix is diagonal: the joint statistic is the sum
    joint = sum(chi2s)
    lines.append(
        f"Joint test (all B__ = W__): chi2(5) = {joint:.2f}; p-value: {stats.chi2.sf(joint, 5):.4f}"
    )
    assert seed_hybrid.test_text() == "\n".join(lines)
    assert seed_hybrid.table(test=True).endswith("\n\n" + "\n".join(lines))
    np.testing.assert_allclose(seed_hybrid.tests()["chi2"], [*chi2s, joint], rtol=1e-12)
    # CRE: every D__ has z = 10
    assert seed_cre.test_text().splitlines()[1:] == [
        "  _b[D__nauthors] = 0; p-value: 0.0000",
        "  _b[D__npages] = 0; p-value: 0.0000",
        "  _b[D__nrefs] = 0; p-value: 0.0000",
        "  _b[D__jifperc] = 0; p-value: 0.0000",
        "  _b[D__careerstage] = 0; p-value: 0.0000",
        "Joint test (all D__ = 0): chi2(5) = 500.00; p-value: 0.0000",
    ]


def test_full_output_is_the_mixed_models_table(seed_hybrid):
    text = seed_hybrid.table(full=True)
    assert text.startswith("Hybrid model. Family: binomial. Link: logit.\n")
    assert "Mixed-effects logistic regression" in text
    assert "W__careerstage |" in text


def test_compare_models_side_by_side(seed_hybrid):
    use = ["nauthors", "npages", "nrefs", "jifperc", "careerstage"]
    table = mg.compare(
        [seed_like_results(), seed_hybrid],
        ["RE", "Hybrid"],
        rename={f"W__{v}": v for v in use},
        stats=("ll", "aic", "N"),
        star=True,
    )
    expected = """\
+------------------------------------------------------+
|             Variable |      RE       |    Hybrid     |
|----------------------+---------------+---------------|
| topq                 |               |               |
|             nauthors |     0.0730*** |     0.0824*** |
|               npages |     0.0147*** |     0.0106*** |
|                nrefs |     0.0063*** |     0.0068*** |
|              jifperc |     0.0400*** |     0.0388*** |
|          careerstage |    -0.0395*** |    -0.0534*** |
|    C(female)[Female] |    -0.2309*** |               |
|          C(usa)[Yes] |     0.2644*** |               |
|C(socialscience)[Yes] |     0.1206*** |               |
|            R__female |               |    -0.1694*** |
|     R__socialscience |               |     0.0924*** |
|               R__usa |               |     0.1860*** |
|          B__nauthors |               |     0.0207*** |
|            B__npages |               |     0.0428*** |
|             B__nrefs |               |     0.0071*** |
|           B__jifperc |               |     0.0518*** |
|       B__careerstage |               |    -0.0063*** |
|                _cons |    -3.9931*** |    -5.1434*** |
|----------------------+---------------+---------------|
|        var(_cons[id])|               |               |
|                _cons |     0.5334*** |     0.4649*** |
|----------------------+---------------+---------------|
| Statistics           |               |               |
|                   ll | -2.095e+05    | -2.088e+05    |
|                  aic |  4.190e+05    |  4.177e+05    |
|                    N |     374334    |     374334    |
+------------------------------------------------------+
                   legend: * p<.05; ** p<.01; *** p<.001"""
    assert str(table) == expected
    frame = table.to_frame()
    assert frame.loc[("topq", "nauthors", "b"), "Hybrid"] == pytest.approx(0.0824)
    assert math.isnan(frame.loc[("topq", "R__usa", "b"), "RE"])
    assert frame.loc[("Statistics", "N", "stat"), "RE"] == 374334


class _Minimal:
    """The least a result needs for compare(): params, bse, pvalues, loglik, nobs."""

    params = pd.Series({"x": 1.5, "_cons": -2.0})
    bse = pd.Series({"x": 0.5, "_cons": 1.0})
    pvalues = pd.Series({"x": 0.0027, "_cons": 0.0455})
    loglik = -123.456
    nobs = 50
    response = "y"


def test_compare_takes_any_result_object():
    expected = """\
+--------------------------------------+
|             Variable |      FE       |
|----------------------+---------------|
| y                    |               |
|                    x |     1.5000**  |
|                      |     0.5000    |
|                _cons |    -2.0000*   |
|                      |     1.0000    |
|----------------------+---------------|
| Statistics           |               |
|                   ll |  -123.4560    |
|                 chi2 |          .    |
|                    N |         50    |
+--------------------------------------+
   legend: * p<.05; ** p<.01; *** p<.001
                            legend: b/se"""
    table = mg.compare([_Minimal()], ["FE"], star=True, se=True, stats=("ll", "chi2", "N"))
    assert str(table) == expected


def test_compare_from_json_documents_equals_compare_from_results(seed_hybrid):
    doc = seed_hybrid.to_dict()
    a = mg.compare([seed_hybrid], ["m"], stats=("ll", "chi2", "p", "aic", "bic", "N", "N_g"))
    b = mg.compare([doc], ["m"], stats=("ll", "chi2", "p", "aic", "bic", "N", "N_g"))
    assert str(a) == str(b)


def test_compare_errors(seed_hybrid):
    with pytest.raises(MixedGLMError, match="at least one model"):
        mg.compare([])
    with pytest.raises(MixedGLMError, match="2 models but 1 names"):
        mg.compare([seed_hybrid, seed_hybrid], ["a"])
    with pytest.raises(MixedGLMError, match="unknown statistic 'r2'"):
        str(mg.compare([seed_hybrid], stats=("ll", "r2")))
    with pytest.raises(MixedGLMError, match="cannot tabulate a _Minimal: it has no 'loglik'"):
        mg.compare([type("_Minimal", (), {"params": 1, "bse": 1, "pvalues": 1})()])
    with pytest.raises(MixedGLMError, match="unknown statistic 'r2'"):
        seed_hybrid.table(stats=("r2",))


def test_long_names_widen_the_columns(seed_hybrid):
    table = mg.compare([seed_hybrid], ["a model with a long name"], star=True)
    lines = str(table).splitlines()
    assert lines[1] == "|             Variable | a model with a long name |"
    assert lines[4] == "|            R__female |               -0.1694*** |"
    assert len({len(line) for line in lines[:-1]}) == 1


class _WithSlope:
    """A result providing its own column, with a random slope on W__x."""

    def compact_column(self, title):
        from mixedglm.report.compact import Cell, CompactColumn, Equation

        main = Equation(
            "y", (("W__x", Cell(0.5, 0.1, 1e-6)), ("_cons", Cell(1.0, 0.5, 0.04))), True
        )
        slope = Equation("var(W__x[g])", (("_cons", Cell(0.25, 0.05, 1e-6)),))
        return CompactColumn(title, (main, slope), {"ll": -10.0})


def test_compare_renames_inside_variance_components_and_skips_missing_outcomes():
    doc = {
        "coef": [{"term": "x", "estimate": 0.4, "se": 0.1, "p": 0.001}],
        "loglik": -11.0,
        "random": [{"group": "g", "name": "var(x)", "estimate": 0.2, "se": 0.1}],
    }
    table = mg.compare([doc, _WithSlope()], ["a", "b"], rename={"W__x": "x"}, stats=("ll",))
    assert str(table).splitlines()[3:13] == [
        "| y                    |               |               |",
        "|                    x |     0.4000    |     0.5000    |",
        "|                _cons |               |     1.0000    |",
        "|----------------------+---------------+---------------|",
        "|             var(x[g])|               |               |",
        "|                _cons |     0.2000    |     0.2500    |",
        "|----------------------+---------------+---------------|",
        "| Statistics           |               |               |",
        "|                   ll |   -11.0000    |   -10.0000    |",
        "+------------------------------------------------------+",
    ]
