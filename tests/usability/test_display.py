"""print(res), repr(res) and _repr_html_ of every result kind and of compare()."""

from __future__ import annotations

import re

import pytest

import mixedglm as mg

from fixed_results import seed_like_results


def _is_html_table(text: str) -> bool:
    return text.startswith("<table") and text.count("<tr>") >= 2 and "</table>" in text


def test_glmm_prints_its_summary_not_its_fields():
    res = seed_like_results()
    text = str(res)
    assert text == str(res.summary())
    assert repr(res) == text
    assert "Mixed-effects logistic regression" in text and "array(" not in text
    assert len(text) < 4000
    html = res._repr_html_()
    assert _is_html_table(html)
    assert "nauthors" in html and "<caption>" in html and "Akaike" not in html.split("</table>")[0]


def test_fitted_glmm_repr_and_html(logit_fit):
    assert repr(logit_fit).startswith(str(logit_fit.summary())[:40])
    html = logit_fit._repr_html_()
    assert _is_html_table(html) and "var(_cons)" in html


def test_conditional_results_display(panel):
    res = mg.clogit("y ~ x", panel, group="g", quiet=True)
    assert str(res) == str(res.summary()) == repr(res)
    assert "Conditional fixed-effects logistic regression" in str(res)
    html = res._repr_html_()
    assert _is_html_table(html) and ">x<" in html


def test_hybrid_and_compare_display(panel):
    res = mg.hybrid("y ~ f", panel, use=["x"], cluster="g", family="binomial")
    assert str(res) == res.table() == repr(res)
    html = res._repr_html_()
    assert _is_html_table(html)
    for name in ("W__x", "B__x", "R__f", "var(_cons[g])", "Statistics"):
        assert name in html
    table = mg.compare([res, res.glmm], ["Hybrid", "GLMM"], star=True, se=True)
    assert repr(table) == str(table)
    html = table._repr_html_()
    assert _is_html_table(html)
    assert "<th>Hybrid</th><th>GLMM</th>" in html
    assert "legend: * p&lt;.05" in html
    # every estimate of the text table is in the HTML table
    numbers = re.findall(r"-?\d+\.\d{4}", str(table))
    assert numbers and all(n in html for n in numbers)


@pytest.mark.parametrize("attr", ["__repr__", "__str__", "_repr_html_"])
def test_every_result_class_defines_its_display(attr):
    from mixedglm.report.compact import CompactTable
    from mixedglm.results.conditional import ConditionalResults
    from mixedglm.results.glmm import GLMMResults
    from mixedglm.results.hybrid import HybridResults

    for cls in (GLMMResults, ConditionalResults, HybridResults, CompactTable):
        assert getattr(cls, attr) is not object.__dict__.get(attr), (cls, attr)
        assert "dataclass" not in getattr(getattr(cls, attr), "__qualname__", "")


def test_summary_objects_render_as_html_in_jupyter():
    summary = seed_like_results().summary()
    assert summary._repr_html_() == summary.as_html()
    assert _is_html_table(summary._repr_html_())
