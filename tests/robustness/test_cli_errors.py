"""Bad input on the command line: exit code 2, ONE line on stderr that names the culprit, and
no output file left behind (not even a temporary one)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mixedglm.cli import main

F = "y ~ x + (1 | g)"
LONG = "a" * 5000 + ".csv"
FISHER = ["--curvature", "fisher"]
H = ["hybrid", "{good}", "yc ~ x", "--cluster", "g"]
XP = ["xtpoisson", "{good}", "count ~ x", "--group", "g"]

# (id, arguments with {name} for the data files of conftest.files, text the message contains)
CASES = [
    # options
    ("level-150", ["fit", "{good}", F, "--level", "150"], "--level=150 is outside [10, 99.99]"),
    ("level-0", ["fit", "{good}", F, "--level", "0"], "--level=0 is outside"),
    ("level-fraction", ["fit", "{good}", F, "--level", "0.95"], "did you mean 95?"),
    ("level-nan", ["fit", "{good}", F, "--level", "nan"], "--level=nan"),
    ("level-word", ["fit", "{good}", F, "--level", "high"], "--level: invalid float value"),
    ("laplace-method", ["fit", "{good}", F, "--laplace", "--method", "mcaghermite"], "--laplace"),
    ("laplace-nagq", ["fit", "{good}", F, "--laplace", "--nagq", "12"], "nagq=12 conflicts"),
    ("nagq-500", ["fit", "{good}", F, "--nagq", "500"], "at most 200"),
    ("nagq-1000", ["fit", "{good}", F, "--nagq", "1000"], "nagq=1000"),
    ("nagq-0", ["fit", "{good}", F, "--nagq", "0"], "nagq must be a positive integer"),
    ("nagq-float", ["fit", "{good}", F, "--nagq", "7.9"], "--nagq: a whole number or"),
    ("mv-2-points", ["fit", "{good}", F, "--nagq", "2"], "mvaghermite needs at least 3"),
    ("mc-1-point", ["fit", "{good}", F, "--method", "mcaghermite", "--nagq", "1"], "nagq=1"),
    ("fisher-mv", ["fit", "{good}", F, "--curvature", "fisher"], "curvature='fisher'"),
    (
        "fisher-gaussian",
        ["fit", "{good}", "yc ~ x + (1 | g)", "--family", "gaussian", "--laplace", *FISHER],
        "binomial and Poisson",
    ),
    ("family", ["fit", "{good}", F, "--family", "weibull"], "weibull"),
    ("link", ["fit", "{good}", F, "--link", "cauchit"], "cauchit"),
    ("cov", ["fit", "{good}", F, "--cov", "banded"], "unknown covariance structure 'banded'"),
    ("method", ["fit", "{good}", F, "--method", "ghq"], "--method: invalid choice: 'ghq'"),
    # --if
    ("if-assign", ["fit", "{good}", F, "--if", "sample = 1"], "'=' assigns; compare with '=='"),
    ("if-bang", ["fit", "{good}", F, "--if", "!missing(x2)"], "'!' is not Python"),
    ("if-missing", ["fit", "{good}", F, "--if", "missing(x2)"], "write x.isna()"),
    ("if-unknown", ["fit", "{good}", F, "--if", "nosuch == 1"], "variable 'nosuch' not found"),
    ("if-empty-sample", ["fit", "{good}", F, "--if", "sample == 5"], "no observations satisfy"),
    ("if-syntax", ["fit", "{good}", F, "--if", "x2 >"], "pandas syntax: == for equals"),
    ("if-inlist", ["fit", "{good}", F, "--if", "inlist(g, 1, 2)"], "x.isin([a, b])"),
    # data files
    ("long-path", ["fit", LONG, F], "the file name is too long"),
    ("directory", ["fit", "{dir}", F], "is a directory, not a data file"),
    ("no-file", ["fit", "/no/such/file.csv", F], "data file '/no/such/file.csv' does not exist"),
    ("extension", ["fit", "{unknown_ext}", F], "unknown file type '.xyz'"),
    ("empty-file", ["fit", "{empty}", F], "is empty"),
    ("header-only", ["fit", "{header}", F], "but no rows of data"),
    ("semicolons", ["fit", "{semicolon}", F], "looks separated by semicolons"),
    ("binary-file", ["fit", "{binary}", F], "binary.csv"),
    ("no-dataset", ["fit", "nosuchdataset", F], "neither a file nor a bundled dataset"),
    # output paths, refused before the fit
    ("json-no-dir", ["fit", "{good}", F, "--json", "/no/such/dir/o.json"], "does not exist"),
    ("json-is-dir", ["fit", "{good}", F, "--json", "{dir}"], "is a directory; give a file"),
    ("json-is-data", ["fit", "{good}", F, "--json", "{good}"], "is an input file"),
    ("reffects-no-dir", ["fit", "{good}", F, "--reffects", "/no/dir/r.csv"], "--reffects"),
    (
        "same-outputs",
        ["fit", "{good}", F, "--json", "{out}/same", "--reffects", "{out}/same"],
        "name the same file",
    ),
    # data values
    ("infinite", ["fit", "{inf}", F], "variable 'x' has 1 infinite value"),
    ("huge", ["fit", "{huge}", F], "variable 'x' has 6 values larger than 1e+15"),
    ("text-numbers", ["fit", "{text_in_numbers}", "y ~ x2 + (1 | g)"], "'n/a?'"),
    ("log-negative", ["fit", "{good}", "y ~ np.log(x) + (1 | g)"], "column 'np.log(x)'"),
    ("unknown-var", ["fit", "{good}", "y ~ xx + (1 | g)"], "variable 'xx' not found"),
    ("unknown-outcome", ["fit", "{good}", "yy ~ x + (1 | g)"], "outcome 'yy' not found"),
    ("formula-syntax", ["fit", "{good}", "y ~ x + (1 | g"], "never closed"),
    ("constant-outcome", ["fit", "{all_y_one}", F], "outcome 'y' is 1 in every observation"),
    ("one-group", ["fit", "{one_group}", F], "'g' has a single group"),
    ("slope-constant", ["fit", "{const_slope}", "y ~ x + (1 + x2 | g)"], "random slope on 'x2'"),
    ("poisson-negative", ["fit", "{good}", "x ~ x2 + (1 | g)", "--family", "poisson"], "'x'"),
    ("offset-unknown", ["fit", "{good}", F, "--offset", "nosuch"], "variable 'nosuch' not found"),
    ("exposure-negative", ["fit", "{good}", F, "--exposure", "x2"], "'x2' must be positive"),
    ("trials-poisson", ["fit", "{good}", F, "--family", "poisson", "--trials", "count"], "trials"),
    # clogit / xtpoisson
    ("clogit-no-group", ["clogit", "{good}", "y ~ x"], "needs the group variable"),
    ("clogit-bad-group", ["clogit", "{good}", "y ~ x", "--group", "gg"], "'gg' not found"),
    ("clogit-level", ["clogit", "{good}", "y ~ x", "--group", "g", "--level", "5"], "--level=5"),
    ("clogit-inf", ["clogit", "{inf}", "y ~ x", "--group", "g"], "'x' has 1 infinite value"),
    ("clogit-random", ["clogit", "{good}", F, "--group", "g"], "no random-effect terms"),
    ("clogit-if", ["clogit", "{good}", "y ~ x", "--group", "g", "--if", "g = 1"], "'=' assigns"),
    ("xtpoisson-negative", ["xtpoisson", "{good}", "x ~ x2", "--group", "g"], "x must be"),
    ("xtpoisson-exposure", [*XP, "--exposure", "q"], "'q'"),
    # hybrid
    ("hybrid-cluster", ["hybrid", "{good}", "yc ~ x", "--cluster", "gg"], "'gg'"),
    ("hybrid-percentage", [*H, "--percentage", "150"], "--percentage=150"),
    ("hybrid-formula", ["hybrid", "{good}", F, "--cluster", "g"], "not a variable name"),
    ("hybrid-nagq", [*H, "--nagq", "500"], "at most 200"),
    ("hybrid-level", [*H, "--level", "100"], "--level=100"),
    ("hybrid-use", [*H, "--use", "nosuch"], "'nosuch'"),
    ("hybrid-slope", [*H, "--randomslope", "zz"], "'zz'"),
    # compare
    ("compare-missing", ["compare", "/no/such/results.json"], "/no/such/results.json"),
    ("compare-not-json", ["compare", "{not_json}"], "is not a JSON results document"),
    ("compare-list", ["compare", "{json_list}"], "is not a results document"),
    ("compare-rename", ["compare", "{not_json}", "--rename", "x"], "--rename takes OLD=NEW"),
]  # fmt: skip


def _argv(template: list[str], files: dict[str, Path], out: Path) -> list[str]:
    names = {k: str(v) for k, v in files.items()} | {"out": str(out)}
    return [a.format(**names) if "{" in a else a for a in template]


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's usage errors
        return int(exc.code)


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_no_output(argv, expected, files, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    args = _argv(argv, files, out)
    if args[0] in ("fit", "hybrid", "clogit", "xtpoisson") and "--json" not in args:
        args += ["--json", str(out / "result.json")]
    if args[0] in ("fit", "clogit", "xtpoisson"):
        args += ["--nolog"]
    if args[0] == "fit" and "--reffects" not in args:
        args += ["--reffects", str(out / "effects.csv")]
    code = _run(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("mixedglm: error: ")
    assert expected in lines[0]
    assert "Traceback" not in err
    assert sorted(os.listdir(out)) == []


def test_the_suite_is_large_enough():
    assert len(CASES) >= 45
    assert len({c[0] for c in CASES}) == len(CASES)
