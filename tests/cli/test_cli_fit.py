"""The command line: tables, JSON, data files of every kind, errors as one line + exit 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mixedglm.cli import main

from refdata import REFERENCE

CONTRA = str(REFERENCE / "data" / "contraception.csv")
FORMULA = "c_use ~ urban + age + child1 + child2 + child3 + (1 | district)"


def test_fit_prints_the_table_and_log(capsys):
    assert main(["fit", CONTRA, FORMULA, "--nagq", "7"]) == 0
    out = capsys.readouterr().out
    assert "Iteration 0:   log likelihood =" in out
    assert "Mixed-effects logistic regression" in out
    assert "LR test vs. logistic model: chibar2(01) =" in out


def test_fit_json_to_stdout_is_pure_json(capsys):
    assert main(["fit", CONTRA, FORMULA, "--json", "-", "--nolog"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "Mixed-effects logistic regression" in captured.err
    keys = {
        "model",
        "family",
        "link",
        "method",
        "nagq",
        "nobs",
        "groups",
        "loglik",
        "aic",
        "bic",
        "converged",
        "iterations",
        "coef",
        "random",
        "lr_test",
        "wald",
        "time_s",
    }
    assert keys <= set(doc)
    assert doc["groups"]["district"] == {
        "n": 60,
        "min": 2,
        "avg": pytest.approx(32.2333, abs=1e-3),
        "max": 118,
    }
    assert [c["term"] for c in doc["coef"]][-1] == "_cons"
    assert set(doc["coef"][0]) == {"term", "estimate", "se", "z", "p", "ci_low", "ci_high"}
    assert doc["random"][0]["name"] == "var(_cons)"
    assert doc["lr_test"]["kind"] == "chibar2" and doc["wald"]["df"] == 5
    assert doc["time_s"] > 0


def test_fit_json_to_file_and_xt_style(tmp_path, capsys):
    target = tmp_path / "out.json"
    assert (
        main(
            [
                "fit",
                CONTRA,
                FORMULA,
                "--json",
                str(target),
                "--nolog",
                "--style",
                "xt",
                "--nagq",
                "12",
                "--level",
                "90",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Random-effects logistic regression" in out and "[90% Conf. Interval]" in out
    assert "/lnsig2u" in out and "LR test of rho=0" in out
    doc = json.loads(target.read_text())
    assert doc["nagq"] == 12 and doc["level"] == 90.0


def test_stata_file_with_value_labels_and_if(tmp_path, capsys):
    data = pd.read_csv(CONTRA)
    path = tmp_path / "bangladesh.dta"
    data[["district", "c_use", "urban", "age", "child1", "child2", "child3"]].to_stata(
        path, write_index=False, value_labels={"urban": {0: "rural", 1: "urban"}}
    )
    assert (
        main(
            [
                "fit",
                str(path),
                "c_use ~ urban + age + (1 | district)",
                "--nolog",
                "--if",
                "district <= 30",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    # the labelled variable became a categorical: Stata's factor layout
    assert "       urban |" in out and "      urban  |" in out
    assert "Number of groups  =         30" in out


def test_parquet_file(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    path = tmp_path / "contra.parquet"
    pd.read_csv(CONTRA).to_parquet(path)
    assert main(["fit", str(path), FORMULA, "--nolog", "--laplace"]) == 0
    assert "Integration method:     Laplace" in capsys.readouterr().out


def test_poisson_with_exposure_and_reffects(tmp_path, capsys):
    mmmec = str(REFERENCE / "data" / "mmmec.csv")
    target = tmp_path / "re.csv"
    assert (
        main(
            [
                "fit",
                mmmec,
                "deaths ~ uvb + (1 | region)",
                "--family",
                "poisson",
                "--exposure",
                "expected",
                "--nolog",
                "--reffects",
                str(target),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Mixed-effects Poisson regression" in out and "ln(expected) |          1" in out
    assert "LR test vs. Poisson model" in out
    effects = pd.read_csv(target, index_col=0)
    assert list(effects.columns) == ["_cons", "se(_cons)"] and len(effects) == 78
    assert np.all(effects["se(_cons)"] > 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", CONTRA, "c_use ~ nosuch + (1 | district)"], "variable 'nosuch' not found"),
        (["fit", CONTRA, "c_use ~ urban + (1 | district"], "never closed"),
        (["fit", "no/such/file.csv", FORMULA], "does not exist"),
        (["fit", "nosuchdataset", FORMULA], "neither a file nor a bundled dataset"),
        (["fit", CONTRA, "age ~ urban + (1 | district)"], "must be 0 or 1"),
        (["fit", CONTRA, FORMULA, "--nagq", "0"], "nagq must be a positive integer"),
        (["fit", CONTRA, FORMULA, "--if", "nosuch == 1"], "cannot evaluate the condition"),
        (["fit", CONTRA, FORMULA, "--family", "weibull"], "unknown family"),
        (["fit", CONTRA], "the following arguments are required"),
    ],
)
def test_errors_are_one_line_and_exit_code_2(capsys, args, message):
    code = main(args) if args[1:] != [CONTRA] else _parse_error(args)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("mixedglm: error:")
    assert "Traceback" not in err


def _parse_error(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code)


def test_console_script_runs(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "mixedglm.cli", "fit", CONTRA, "c_use ~ urbanx + (1 | district)"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "mixedglm: error: variable 'urbanx' not found in the data (fixed part 'urbanx') "
        "(did you mean 'urban'?)"
    )
