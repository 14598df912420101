"""Hard data that must still give every output: boundary variances, separation, singular
fits; notes printed once; output files all or nothing."""

from __future__ import annotations

import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.cli import main
from mixedglm.design.checks import conditional_separation_notes, separation_notes
from mixedglm.errors import FileError
from mixedglm.inference.singular import singular_notes
from mixedglm.inference.varcomp import atanh_ci, log_scale_ci
from mixedglm.io_safety import OutputSet


@pytest.fixture(scope="module")
def singletons(frame):
    """Every cluster of size 1: the intercept variance is not identified and goes to ~0."""
    return frame.assign(g=np.arange(len(frame)))


@pytest.fixture(scope="module")
def boundary_fit(singletons):
    return mg.glmm("y ~ x + (1 | g)", singletons, nolog=True, quiet=True)


def test_a_boundary_variance_never_breaks_an_output(boundary_fit):
    res = boundary_fit
    var = res.varcomp()[0]
    assert var.estimate < 1e-6
    assert math.isnan(var.ci_low) and math.isnan(var.ci_high)  # no interval where none exists
    assert any("boundary (singular) fit" in n for n in res.notes)
    text = str(res.summary()) + str(res.summary(style="xt")) + res.estat_sd()
    assert "var(_cons)" in text and "sigma_u" in text
    assert res.to_frame().loc["var(_cons)", "estimate"] == pytest.approx(var.estimate)
    assert res.sd().loc["sd(_cons)", "estimate"] == pytest.approx(math.sqrt(var.estimate))
    assert 0 <= res.icc()["icc"].iloc[0] < 1e-6
    doc = json.loads(json.dumps(res.to_dict()))
    assert "boundary (singular) fit" in " ".join(doc["notes"])
    assert res.random_effects().shape == (len(res.design.group.labels), 2)
    # the fixed part is the pooled logit's: the data carry no cluster effect
    assert np.all(np.isfinite(res.bse))


def test_cli_boundary_fit_writes_every_output_and_prints_the_note_once(
    singletons, tmp_path, capsys
):
    data = tmp_path / "single.csv"
    singletons.to_csv(data, index=False)
    out, eff = tmp_path / "r.json", tmp_path / "re.csv"
    code = main(["fit", str(data), "y ~ x + (1 | g)", "--json", str(out), "--reffects", str(eff)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.count("boundary (singular) fit") == 1
    assert json.loads(out.read_text())["random"][0]["name"] == "var(_cons)"
    assert len(pd.read_csv(eff)) == len(singletons)
    assert sorted(os.listdir(tmp_path)) == ["r.json", "re.csv", "single.csv"]


def test_cli_notes_are_printed_once(frame, tmp_path, capsys):
    data = tmp_path / "dots.csv"
    dots = frame.astype({"x2": object})
    dots.loc[[4, 7], "x2"] = "."  # Stata's missing value
    dots.to_csv(data, index=False)
    assert main(["fit", str(data), "y ~ x2 + (1 | g)", "--nolog", "--laplace"]) == 0
    out = capsys.readouterr().out
    note = "note: 2 observations dropped because of missing values (x2 2)"
    assert out.count(note) == 1


# -- separation ---------------------------------------------------------------------------


def _design(frame, *columns):
    X = np.column_stack([frame[c].to_numpy(float) for c in columns] + [np.ones(len(frame))])
    return X, [*columns, "_cons"]


def test_complete_separation_is_named(frame):
    X, names = _design(frame.assign(sep=frame["y"]), "x", "sep")
    (note,) = separation_notes(frame["y"].to_numpy(float), X, names, "bernoulli")
    assert note.startswith("note: sep predicts the outcome perfectly for 300 observations")
    assert "(complete separation)" in note


def test_quasi_separation_by_an_indicator(frame):
    z = ((frame["g"] < 15) & (frame["g"] % 2 == 0)).astype(int)
    y = np.where(z == 1, 1, frame["y"])
    X, names = _design(frame.assign(z=z), "x", "z")
    (note,) = separation_notes(y.astype(float), X, names, "bernoulli")
    assert note.startswith("note: z predicts the outcome perfectly for 80 observations")
    assert "quasi-complete" in note


def test_separation_by_a_combination_names_both(frame):
    a = frame["x"].to_numpy()
    b = frame["x2"].to_numpy()
    y = (a + b > 0).astype(float)
    X, names = _design(frame, "x", "x2")
    (note,) = separation_notes(y, X, names, "bernoulli")
    assert "x and x2 predict the outcome perfectly" in note


def test_no_separation_no_note(frame):
    X, names = _design(frame, "x", "x2")
    assert separation_notes(frame["y"].to_numpy(float), X, names, "bernoulli") == []
    counts = frame["count"].to_numpy(float)
    assert separation_notes(counts, X, names, "poisson") == []
    assert separation_notes(frame["yc"].to_numpy(float), X, names, "gaussian") == []


def test_count_and_binomial_separation(frame):
    pos = (frame["x"] > 0.5).astype(int)
    counts = np.where(pos == 1, 0, frame["count"] + 1).astype(float)
    X, names = _design(frame.assign(pos=pos), "x2", "pos")
    (note,) = separation_notes(counts, X, names, "poisson")
    assert note.startswith("note: pos predicts the outcome perfectly")
    trials = np.full(len(frame), 3.0)
    successes = np.where(pos == 1, 3.0, frame["y"].to_numpy(float))
    (note,) = separation_notes(successes, X, names, "binomial", trials)
    assert "pos predicts" in note


def test_conditional_separation(frame):
    # within every group the event has the largest x
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(20), 4)
    x = rng.normal(size=80)
    y = np.zeros(80)
    for k in range(20):
        y[4 * k + np.argmax(x[4 * k : 4 * k + 4])] = 1
    starts = np.arange(0, 84, 4)
    X = np.column_stack([x, rng.normal(size=80)])
    (note,) = conditional_separation_notes(y, X, starts, ["x", "w"], "logit")
    assert note.startswith("note: x predicts the outcome perfectly for 60 pairs of observations")
    res = mg.clogit(
        "y ~ x + w", pd.DataFrame({"y": y, "x": x, "w": X[:, 1], "g": g}), "g", quiet=True
    )
    assert any("x predicts the outcome perfectly" in n for n in res.notes)
    noise = conditional_separation_notes(rng.permutation(y), X, starts, ["x", "w"], "logit")
    assert noise == []


def test_separation_in_a_glmm_fit_is_noted(frame):
    res = mg.glmm(
        "y ~ x + sep + (1 | g)", frame.assign(sep=frame["y"]), nolog=True, quiet=True, nagq=3
    )
    assert any(n.startswith("note: sep predicts the outcome perfectly") for n in res.notes)
    assert "sep predicts" in str(res.summary())


# -- singular fits ------------------------------------------------------------------------


def _fake(lam: np.ndarray):
    """The parts of a result that singular_notes reads, with Lambda given."""
    return SimpleNamespace(
        structure=SimpleNamespace(lam=lambda _theta: lam, columns=("x", "_cons")),
        design=SimpleNamespace(Z=np.ones((10, 2)), group=SimpleNamespace(name="g")),
        family=SimpleNamespace(name="bernoulli"),
        theta=None,
        aux=np.zeros(0),
    )


def test_singular_notes_as_lme4():
    perfect = np.array([[1.0, 0.0], [0.5, 0.0]])  # Sigma = Lambda Lambda': corr = 1
    (note,) = singular_notes(_fake(perfect))
    assert note.startswith("note: boundary (singular) fit")
    assert "corr(x,_cons) = 1.0000" in note
    (note,) = singular_notes(_fake(np.array([[1e-6, 0.0], [0.0, 1.0]])))
    assert "var(x) near zero" in note
    assert singular_notes(_fake(np.linalg.cholesky(np.array([[1.0, 0.3], [0.3, 2.0]])))) == []


# -- intervals at the boundary ------------------------------------------------------------


def test_intervals_never_overflow():
    assert all(math.isnan(v) for v in log_scale_ci(3e-11, 5.9e-5, 1.96))
    assert all(math.isnan(v) for v in log_scale_ci(1e-300, 1.0, 1.96))
    lo, hi = log_scale_ci(1.0, 0.1, 1.96)
    assert lo == pytest.approx(math.exp(-0.196)) and hi == pytest.approx(math.exp(0.196))
    assert all(math.isnan(v) for v in atanh_ci(0.5, math.inf, 1.96))


# -- output files ---------------------------------------------------------------------------


def test_outputs_are_all_or_nothing(tmp_path):
    first, sub = tmp_path / "a.json", tmp_path / "sub"
    sub.mkdir()
    outputs = OutputSet()
    outputs.add(first, "{}", "--json")
    outputs.add(sub / "b.csv", "x\n", "--reffects")
    sub.rmdir()  # the second target's directory goes away before the write
    with pytest.raises(FileError, match="--reffects: cannot write"):
        outputs.commit()
    assert os.listdir(tmp_path) == []
    outputs = OutputSet()
    outputs.add(first, "{}", "--json")
    outputs.commit()
    assert first.read_text() == "{}"
    assert oct(first.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
