"""``mixedglm compare --format``: the documents of every result kind side by side, as text,
markdown, LaTeX or HTML, equal to compare() of the fitted objects."""

from __future__ import annotations

import json

import pytest

import mixedglm as mg
from mixedglm.cli import main

from fixed_results import fe_result, glmm_result, hybrid_result


@pytest.fixture
def documents(tmp_path):
    paths = []
    results = {"re": glmm_result(), "fe": fe_result(eform=True), "hy": hybrid_result()}
    for name, res in results.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(res.to_dict()))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex", "html"])
def test_every_format_equals_compare_of_the_objects(documents, fmt, capsys):
    stats = ["ll", "ll_0", "aic", "bic", "rank", "N"]
    code = main(["compare", *documents, "--format", fmt, "--star", "--stats", *stats])
    out = capsys.readouterr().out
    assert code == 0
    table = mg.compare(
        [glmm_result(), fe_result(), hybrid_result()], ["re", "fe", "hy"], star=True, stats=stats
    )
    assert out == getattr(table, f"as_{fmt}")() + "\n"


def test_an_unknown_format_is_a_usage_error(documents, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["compare", *documents, "--format", "docx"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("mixedglm: error: argument --format: invalid choice: 'docx'")
    assert err.count("\n") == 1
