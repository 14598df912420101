"""``mixedglm hybrid`` and ``mixedglm compare``: tables, tests, JSON, one-line errors."""

from __future__ import annotations

import json

import pytest

from mixedglm.cli import main


@pytest.fixture
def csv(panel, tmp_path):
    path = tmp_path / "panel.csv"
    panel.to_csv(path, index=False)
    return str(path)


def test_hybrid_table_with_stars_and_tests(csv, capsys):
    code = main(
        [
            *["hybrid", csv, "yb ~ x1 x2 z", "--cluster", "g", "--use", "x1", "x2"],
            *["--family", "binomial", "--star", "--test", "--nagq", "3"],
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "note: 3 observations dropped because of missing values (x2 3)"
    assert lines[1] == "Hybrid model. Family: binomial. Link: logit."
    assert lines[2] == "+--------------------------------------+"
    assert "|                 R__z |" in out
    assert "   legend: * p<.05; ** p<.01; *** p<.001" in lines
    assert "Level 1: 554 units. Level 2: 80 units." in lines
    assert "Tests of the random effects assumption:" in lines
    assert "  _b[B__x1] = _b[W__x1]; p-value: " in out


def test_cre_with_se_and_p_and_json_to_stdout(csv, capsys):
    code = main(
        [
            *["hybrid", csv, "y ~ x1 + x2 + z", "--cluster", "g", "--cre", "--test"],
            *["--se", "--p", "--json", "-"],
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    doc = json.loads(captured.out)
    assert doc["model"] == "cre"
    assert doc["hybrid"]["between"] == ["D__x1", "D__x2"]
    assert [t["variable"] for t in doc["tests"]] == ["x1", "x2", "joint"]
    assert captured.err.splitlines()[:2] == [
        "note: 4 observations dropped because of missing values (y 1, x2 3)",
        "The variable 'z' does not vary sufficiently within clusters",
    ]
    assert "Correlated random effects model. Family: gaussian. Link: identity." in captured.err
    assert "legend: b/se/p" in captured.err
    assert "  _b[D__x1] = 0; p-value: " in captured.err


def test_full_output(csv, capsys):
    assert main(["hybrid", csv, "y x1 x2", "--cluster", "g", "--full", "--nagq", "3"]) == 0
    out = capsys.readouterr().out
    assert "Hybrid model. Family: gaussian. Link: identity." in out
    assert "Mixed-effects ML regression" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["y ~ x1", "--cluster", "g", "--use", "x3"], "use() variable 'x3' not found in the data"),
        (["y ~ x1", "--cluster", "gg"], "cluster variable 'gg' not found in the data"),
        (["y ~ x1 + (1 | g)", "--cluster", "g"], "'(1' in 'y ~ x1 + (1 | g)' is not a variable"),
        (["y ~ x1", "--cluster", "g", "--family", "binomial"], "outcome 'y' must be 0 or 1"),
    ],
)
def test_errors_are_one_line_and_exit_2(csv, capsys, args, message):
    assert main(["hybrid", csv, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixedglm: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_missing_cluster_and_reserved_names(panel, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    panel.assign(g=panel["g"].where(panel.index > 1), W__a=panel["x1"]).to_csv(path, index=False)
    assert main(["hybrid", str(path), "y ~ x1", "--cluster", "g"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "mixedglm: error: cluster variable 'g' has 2 missing values: give those rows a "
        "cluster or drop them\n"
    )
    path2 = tmp_path / "bad2.csv"
    panel.assign(W__a=panel["x1"]).to_csv(path2, index=False)
    assert main(["hybrid", str(path2), "y ~ x1 W__a", "--cluster", "g"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixedglm: error: variable 'W__a' starts with a prefix")
    assert err.count("\n") == 1


def test_compare_json_documents(csv, tmp_path, capsys):
    a, b = tmp_path / "hybrid.json", tmp_path / "cre.json"
    common = ["y ~ x1 x2 z", "--cluster", "g", "--use", "x1", "x2", "--nagq", "3"]
    assert main(["hybrid", csv, *common, "--json", str(a)]) == 0
    assert main(["hybrid", csv, *common, "--cre", "--json", str(b)]) == 0
    capsys.readouterr()
    code = main(
        [
            *["compare", str(a), str(b), "--names", "Hybrid", "CRE", "--star"],
            *["--stats", "ll", "N", "--rename", "D__x1=B__x1"],
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "|             Variable |    Hybrid     |      CRE      |"
    assert lines[3] == "| y                    |               |               |"
    assert any(line.startswith("|                B__x1 |") for line in lines)
    assert not any("D__x1" in line for line in lines)
    assert "D__x2" in out
    assert lines[-3] == "|                    N |        553    |        553    |"


def test_compare_errors(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["compare", str(bad)]) == 2
    assert "is not a JSON results document" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "none.json")]) == 2
    assert main(["compare", str(bad), "--rename", "x"]) == 2
