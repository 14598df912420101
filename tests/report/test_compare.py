"""compare() of every result kind (GLMM, conditional fixed effects, hybrid) from fixed numbers:
the statistics (ll_0, rank, AIC, BIC...) for each kind, the same table from an object and from
its JSON document, odds-ratio documents, omitted terms, and the markdown, LaTeX and HTML
renderings of a compact table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import mixedglm as mg
from mixedglm.report.grid import Grid, GridRow
from mixedglm.report.render import render_html, render_latex, render_markdown

from fixed_results import fe_result, glmm_result, hybrid_result

ALL_STATS = ("N", "N_g", "ll", "ll_0", "chi2", "df_m", "p", "aic", "bic", "rank")
N_SEED, G_SEED = 374_334, 14_129  # the fixed GLMM results' sample (tests/fixed_results.py)


def roundtrip(doc: dict) -> dict:
    return json.loads(json.dumps(doc))


def test_every_kind_has_ll_0_rank_aic_and_bic():
    models = [glmm_result(), fe_result(), hybrid_result()]
    frame = mg.compare(models, ["RE", "FE", "Hybrid"], stats=ALL_STATS).to_frame()
    stat = {name: frame.xs(("Statistics", name, "stat")) for name in ALL_STATS}
    # the GLMM: ll_0 is the model without random effects (ll - LR / 2); rank 2 + 1
    expected = {
        "RE": (N_SEED, G_SEED, -1000.0, -1020.0, 3, 25.0, 1),
        "FE": (200, 50, -120.0, -130.0, 1, 20.0, 1),
        "Hybrid": (N_SEED, G_SEED, -990.0, -1005.0, 4, (0.4 / 0.1) ** 2 + 3.0**2, 2),
    }
    for col, (n, n_g, ll, ll_0, rank, chi2, df) in expected.items():
        assert stat["N"][col] == n and stat["N_g"][col] == n_g
        assert stat["ll"][col] == ll and stat["ll_0"][col] == pytest.approx(ll_0, abs=1e-9)
        assert stat["rank"][col] == rank
        assert stat["aic"][col] == pytest.approx(-2 * ll + 2 * rank, rel=1e-12)
        assert stat["bic"][col] == pytest.approx(-2 * ll + math.log(n) * rank, rel=1e-12)
        assert stat["chi2"][col] == pytest.approx(chi2, rel=1e-12)
        assert stat["df_m"][col] == df
    # the conditional logit's model test is the LR test against beta = 0
    assert stat["chi2"]["FE"] == pytest.approx(2 * (-120.0 + 130.0))


def test_the_statistics_block_as_text():
    text = str(mg.compare([glmm_result(), fe_result()], ["RE", "FE"], stats=ALL_STATS))
    lines = text.splitlines()
    assert lines[-12:] == [
        "| Statistics           |               |               |",
        "|                    N |     374334    |        200    |",
        "|                  N_g |      14129    |         50    |",
        "|                   ll | -1000.0000    |  -120.0000    |",
        "|                 ll_0 | -1020.0000    |  -130.0000    |",
        "|                 chi2 |    25.0000    |    20.0000    |",
        "|                 df_m |          1    |          1    |",
        "|                    p |     0.0000    |     0.0000    |",
        "|                  aic |  2006.0000    |   242.0000    |",
        "|                  bic |  2038.4987    |   245.2983    |",
        "|                 rank |          3    |          1    |",
        "+------------------------------------------------------+",
    ]
    assert "|                    z |               |  (omitted)    |" in lines


@pytest.mark.parametrize("make", [glmm_result, fe_result, hybrid_result])
def test_an_object_and_its_json_document_give_the_same_column(make):
    res = make()
    doc = roundtrip(res.to_dict())
    from_object = mg.compare([res], ["m"], stats=ALL_STATS, se=True, t=True, p=True, star=True)
    from_json = mg.compare([doc], ["m"], stats=ALL_STATS, se=True, t=True, p=True, star=True)
    assert str(from_object) == str(from_json)
    assert from_object.as_latex() == from_json.as_latex()
    assert "|          . |" not in str(from_object)


@pytest.mark.parametrize("make", [glmm_result, fe_result, hybrid_result])
def test_every_document_has_the_shared_keys(make):
    res = make()
    doc = roundtrip(res.to_dict())
    shared = {
        "model", "depvar", "family", "link", "method", "nagq", "nobs", "n_params", "groups",
        "loglik", "loglik_0", "aic", "bic", "converged", "iterations", "coef", "terms",
        "omitted", "random", "aux", "lr_test", "wald", "level", "notes", "time_s",
    }  # fmt: skip
    assert shared <= set(doc)
    assert doc["n_params"] == res.n_params
    assert doc["aic"] == pytest.approx(res.aic) and doc["bic"] == pytest.approx(res.bic)
    assert [c["term"] for c in doc["coef"]] == list(res.params.index)
    assert set(doc["terms"]) >= set(res.params.index)


def test_loglik_0_of_each_kind():
    assert glmm_result().to_dict()["loglik_0"] == pytest.approx(-1020.0)
    assert fe_result().to_dict()["loglik_0"] == -130.0
    assert hybrid_result().to_dict()["loglik_0"] == pytest.approx(-1005.0)
    assert fe_result().to_dict()["terms"] == ["x", "z"]


def test_an_odds_ratio_document_is_tabulated_as_coefficients():
    doc = roundtrip(fe_result(eform=True).to_dict())
    assert doc["eform"] == "Odds Ratio"
    assert doc["coef"][0]["estimate"] == pytest.approx(math.exp(0.45))
    plain = mg.compare([fe_result()], ["m"], se=True).to_frame()
    from_or = mg.compare([doc], ["m"], se=True).to_frame()
    np.testing.assert_allclose(from_or["m"].to_numpy(), plain["m"].to_numpy(), rtol=1e-12)
    assert from_or.loc[("topq", "x", "b"), "m"] == pytest.approx(0.45, rel=1e-12)
    assert from_or.loc[("topq", "x", "se"), "m"] == pytest.approx(0.12, rel=1e-12)


class _Documented:
    """A foreign result that serialises itself: compare() uses its document."""

    def to_dict(self) -> dict:
        return {
            "depvar": "y",
            "coef": [{"term": "x", "estimate": 2.0, "se": 0.5, "p": 6.3e-5}],
            "loglik": -50.0,
            "loglik_0": -60.0,
            "n_params": 1,
            "nobs": 100,
        }


def test_a_foreign_object_with_to_dict():
    frame = mg.compare([_Documented()], ["f"], stats=("ll", "ll_0", "rank", "N")).to_frame()
    assert frame["f"].tolist() == [2.0, -50.0, -60.0, 1.0, 100.0]


# -- renderings -------------------------------------------------------------------------------


def small_table():
    return mg.compare([glmm_result(), fe_result()], ["RE", "FE"], stats=("ll", "ll_0", "rank"),
                      star=True, se=True, title="Two models")  # fmt: skip


def test_markdown():
    assert small_table().as_markdown() == "\n".join(
        [
            "**Two models**",
            "",
            "| Variable | RE | FE |",
            "|---|---:|---:|",
            "| topq |  |  |",
            "| x | 0.5000*** | 0.4500*** |",
            "|  | 0.1000 | 0.1200 |",
            "| z |  | (omitted) |",
            "|  |  |  |",
            "| _cons | -1.0000*** |  |",
            "|  | 0.2000 |  |",
            "| var(_cons[id]) |  |  |",
            "| _cons | 0.6400*** |  |",
            "|  | 0.0800 |  |",
            "| Statistics |  |  |",
            "| ll | -1000.0000 | -120.0000 |",
            "| ll_0 | -1020.0000 | -130.0000 |",
            "| rank | 3 | 1 |",
            "",
            "legend: * p<.05; ** p<.01; *** p<.001",
            "legend: b/se",
        ]
    )


def test_latex():
    text = small_table().as_latex()
    lines = text.splitlines()
    assert lines[:4] == [r"\begin{tabular}{lrr}", r"\hline", r"Variable & RE & FE \\", r"\hline"]
    assert r"\_cons & -1.0000*** &  \\" in lines
    assert r"var(\_cons[id]) &  &  \\" in lines
    assert lines.count(r"\hline") == 5  # top, under the header, 2 between 3 blocks, bottom
    assert lines[-1] == r"\end{tabular}"
    assert lines[-3:-1] == [r"rank & 3 & 1 \\", r"\hline"]


def test_html():
    text = small_table().as_html()
    assert text.startswith(
        '<table class="mixedglm"><caption>Two models</caption><thead><tr><th>Variable</th>'
        "<th>RE</th><th>FE</th></tr></thead><tbody>"
    )
    assert "<tr><td>z</td><td></td><td>(omitted)</td></tr>" in text
    assert "<tr><td>ll_0</td><td>-1020.0000</td><td>-130.0000</td></tr>" in text
    assert text.endswith(
        '<tr class="note"><td colspan="3">legend: * p&lt;.05; ** p&lt;.01; *** p&lt;.001'
        "<br>legend: b/se</td></tr></tbody></table>"
    )


def test_as_text_is_the_stata_text():
    table = small_table()
    assert table.as_text() == str(table)
    assert table.as_text().splitlines()[0] == "Two models"


def test_the_hybrid_table_renders_too():
    res = hybrid_result()
    md = res.compact_table(star=True).as_markdown()
    assert md.splitlines()[0] == "**Hybrid model. Family: binomial. Link: logit.**"
    assert "| W__x | 0.4000*** |" in md
    assert md.endswith("Level 1: 374334 units. Level 2: 14129 units.")


def test_the_conditional_summary_renders_as_markdown():
    md = fe_result().summary().as_markdown()
    assert md.splitlines()[0] == "**Conditional fixed-effects logistic regression**"
    assert "| x | .45 | .12 | 3.75 | 0.000 | .2148043 | .6851957 |" in md
    assert "| z | 0 | (omitted) |  |  |  |  |" in md


def test_latex_escapes_each_special_character_once():
    grid = Grid(
        "",
        ("a\\b", "{x}_1"),
        ((GridRow("50% & #2", ("$~^",)),),),
    )
    assert render_latex(grid).splitlines()[2:5] == [
        r"a\textbackslash{}b & \{x\}\_1 \\",
        r"\hline",
        r"50\% \& \#2 & \$\textasciitilde{}\textasciicircum{} \\",
    ]


def test_markdown_escapes_pipes_and_html_leaves_out_an_empty_caption():
    grid = Grid("", ("y", "P>|z|"), ((GridRow("a|b", ("1",)),),))
    assert render_markdown(grid).splitlines() == [
        "| y | P>\\|z\\| |",
        "|---|---:|",
        "| a\\|b | 1 |",
    ]
    assert render_html(grid) == (
        '<table class="mixedglm"><thead><tr><th>y</th><th>P&gt;|z|</th></tr></thead>'
        "<tbody><tr><td>a|b</td><td>1</td></tr></tbody></table>"
    )
