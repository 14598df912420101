"""``mixedglm clogit`` and ``mixedglm xtpoisson``: tables, notes, JSON, options, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mixedglm.cli import main

from refdata import REFERENCE, load_reference

SIMPANEL = str(REFERENCE / "data" / "sim_panel_logit.csv")
CONTRA = str(REFERENCE / "data" / "contraception.csv")


def test_clogit_prints_notes_log_and_table_in_stata_order(capsys):
    assert main(["clogit", SIMPANEL, "y ~ x1 + x2 + x3", "--group", "id"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "note: multiple positive outcomes within groups encountered.",
        "note: 81 groups (486 obs) dropped because of all positive or",
        "      all negative outcomes.",
    ]
    assert lines[3].startswith("Iteration 0:   log likelihood = -527.99603")
    title = lines.index(
        "Conditional fixed-effects logistic regression   Number of obs     =      1,314"
    )
    assert lines[title - 1] == ""
    assert sum(line.startswith("note:") for line in lines) == 2  # not repeated


def test_clogit_nolog_puts_the_notes_above_the_table(capsys):
    assert main(["clogit", SIMPANEL, "y ~ x1 + x2 + x3", "--group", "id", "--nolog"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not any(line.startswith("Iteration") for line in lines)
    assert lines[0] == "note: multiple positive outcomes within groups encountered."
    assert lines[3].startswith("Conditional fixed-effects logistic regression")


def test_clogit_json_to_stdout_matches_survival(capsys):
    args = ["clogit", CONTRA, "use ~ age + I(age**2) + urban + C(livch)", "--group", "district"]
    assert main([*args, "--json", "-"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "Conditional fixed-effects logistic regression" in captured.err
    assert "Iteration 0:" in captured.err
    ref = load_reference("contra_clogit_exact")
    np.testing.assert_allclose([c["estimate"] for c in doc["coef"]], ref["fixef"]["estimate"], 1e-6)
    np.testing.assert_allclose([c["se"] for c in doc["coef"]], ref["fixef"]["se"], rtol=1e-6)
    assert doc["loglik"] == pytest.approx(ref["loglik"], rel=1e-6)
    assert doc["model"] == "clogit" and doc["random"] == [] and doc["eform"] is None
    assert doc["groups"]["district"]["n"] == 57
    assert set(doc["coef"][0]) == {"term", "estimate", "se", "z", "p", "ci_low", "ci_high"}


def test_clogit_odds_ratios_level_and_subset(capsys, tmp_path):
    out = tmp_path / "res.json"
    args = ["clogit", SIMPANEL, "y ~ x1 + x2", "--group", "id", "--nolog", "--or"]
    assert main([*args, "--level", "90", "--if", "time <= 4", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "           y | Odds Ratio   Std. Err.      z    P>|z|     [90% Conf. Interval]" in text
    doc = json.loads(out.read_text())
    assert doc["eform"] == "Odds Ratio" and doc["level"] == 90.0
    data = pd.read_csv(SIMPANEL)
    assert doc["nobs"] + doc["groups_dropped"]["nobs"] == int((data["time"] <= 4).sum())


def test_xtpoisson_with_exposure_and_irr(capsys, tmp_path):
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(25), 5)
    x = rng.normal(size=g.size)
    t = rng.uniform(1, 2, size=g.size)
    y = rng.poisson(np.exp(0.5 + 0.3 * x) * t)
    path = tmp_path / "counts.csv"
    pd.DataFrame({"g": g, "y": y, "x": x, "t": t}).to_csv(path, index=False)
    assert main(["xtpoisson", str(path), "y ~ x", "--group", "g", "--exposure", "t"]) == 0
    text = capsys.readouterr().out
    assert "Conditional fixed-effects Poisson regression" in text
    assert "       ln(t) |          1  (exposure)" in text
    assert main(["xtpoisson", str(path), "y ~ x", "--group", "g", "--irr", "--nolog"]) == 0
    assert "|        IRR   Std. Err." in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["clogit", SIMPANEL, "y ~ x1"], "needs the group variable"),
        (["clogit", SIMPANEL, "y ~ x1", "--group", "idd"], "group variable 'idd' not found"),
        (["clogit", SIMPANEL, "time ~ x1", "--group", "id"], "must be coded 0/1"),
        (["xtpoisson", SIMPANEL, "x1 ~ x2", "--group", "id"], "must be greater than or equal"),
    ],
)
def test_errors_are_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_exposure_is_for_poisson_only(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["clogit", SIMPANEL, "y ~ x1", "--group", "id", "--exposure", "t"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --exposure t" in capsys.readouterr().err


def test_stata_file_with_value_labels(capsys, tmp_path):
    """A labelled .dta column is a factor: its level's label heads the omitted row, as the
    seed shows ``Female``."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(40), 5)
    female = pd.Categorical.from_codes(np.repeat(rng.integers(0, 2, 40), 5), ["Male", "Female"])
    y = (rng.random(g.size) < 0.4).astype(np.int8)
    frame = pd.DataFrame({"g": g, "x": rng.normal(size=g.size), "y": y, "female": female})
    path = tmp_path / "panel.dta"
    frame.to_stata(path, write_index=False)
    assert main(["clogit", str(path), "y ~ x + female", "--group", "g", "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert "     Female  |          0  (omitted)" in captured.err
    doc = json.loads(captured.out)
    assert doc["omitted"] == [{"term": "female[Female]", "reason": "no within-group variance"}]
