"""Bad input through the Python API: a MixedGLMError subclass with a one-line message that
names the culprit, never another exception and never a silent default."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.errors import (
    DataError,
    FileError,
    FormulaError,
    MixedGLMError,
    OptionError,
    PredictionError,
    SubsetError,
)

F = "y ~ x + (1 | g)"


def _glmm(data, formula=F, **kw):
    return mg.glmm(formula, data, nolog=True, quiet=True, **kw)


def _clogit(data, formula="y ~ x", **kw):
    return mg.clogit(formula, data, "g", nolog=True, quiet=True, **kw)


def _hybrid(data, formula="yc ~ x", **kw):
    return mg.hybrid(formula, data, cluster="g", quiet=True, **kw)


def _with(frame, **columns):
    return frame.assign(**columns)


# (id, function of the frame, error class, text in the message)
CASES = [
    ("level-0", lambda d: _glmm(d, level=0), OptionError, "level=0 is outside"),
    ("level-150", lambda d: _glmm(d, level=150), OptionError, "level=150"),
    ("level-text", lambda d: _glmm(d, level="ninety"), OptionError, "'ninety'"),
    ("nagq-fraction", lambda d: _glmm(d, nagq=7.9), OptionError, "not 7.9"),
    ("nagq-text", lambda d: _glmm(d, nagq="many"), OptionError, "not 'many'"),
    ("nagq-500", lambda d: _glmm(d, nagq=500), OptionError, "at most 200"),
    ("nagq-bool", lambda d: _glmm(d, nagq=True), OptionError, "not True"),
    ("laplace-nagq", lambda d: _glmm(d, method="laplace", nagq=12), OptionError, "nagq=12"),
    ("method", lambda d: _glmm(d, method="ghq"), OptionError, "'ghq'"),
    ("curvature", lambda d: _glmm(d, curvature="expected"), OptionError, "'expected'"),
    ("maxiter", lambda d: _glmm(d, maxiter=0), OptionError, "maxiter must be a positive"),
    ("data-type", lambda d: _glmm(123), DataError, "not int"),
    ("data-empty", lambda d: _glmm(d.head(0)), DataError, "has no rows"),
    ("data-file", lambda d: _glmm("/no/such.csv"), FileError, "'/no/such.csv' does not exist"),
    ("subset-assign", lambda d: _glmm(d, subset="sample = 1"), SubsetError, "'=' assigns"),
    ("subset-missing", lambda d: _glmm(d, subset="missing(x)"), SubsetError, "x.isna()"),
    ("subset-type", lambda d: _glmm(d, subset=["sample"]), SubsetError, "must be a string"),
    ("inf", lambda d: _glmm(_with(d, x=d.x.replace(d.x[0], np.inf))), DataError, "'x' has 1"),
    ("huge", lambda d: _glmm(_with(d, x=d.x * 1e299)), DataError, "'x' has"),
    (
        "gaussian-inf",
        lambda d: _glmm(_with(d, yc=-np.inf), "yc ~ x + (1 | g)", family="gaussian"),
        DataError,
        "'yc' has 300 infinite",
    ),
    ("log-zero", lambda d: _glmm(_with(d, z=0.0), "y ~ np.log(z) + (1 | g)"), DataError, "log"),
    ("constant-y", lambda d: _glmm(_with(d, y=0)), DataError, "'y' is 0 in every observation"),
    (
        "constant-gaussian",
        lambda d: _glmm(_with(d, yc=1.5), "yc ~ x + (1 | g)", family="gaussian"),
        DataError,
        "'yc' is 1.5 in every observation of the estimation sample: its variance is zero",
    ),
    ("all-missing", lambda d: _glmm(_with(d, x=np.nan)), DataError, "x 300"),
    (
        "all-missing-group",
        lambda d: _glmm(_with(d, h=np.nan), "y ~ x + (1 | g) + (1 | h)"),
        DataError,
        "after dropping 300 with missing values (missing per variable: g 0, h 300)",
    ),
    (
        "offset-exposure",
        lambda d: _glmm(
            _with(d, t=2.0, lt=np.log(2.0)),
            "count ~ x + (1 | g)",
            family="poisson",
            offset="lt",
            exposure="t",
        ),
        OptionError,
        "offset 'lt' and exposure 't' may not be combined",
    ),
    (
        "offset-exposure-crossed",
        lambda d: _glmm(
            _with(d, t=2.0, lt=0.5),
            "count ~ x + (1 | g) + (1 | f)",
            family="poisson",
            offset="lt",
            exposure="t",
        ),
        OptionError,
        "may not be combined",
    ),
    ("family", lambda d: _glmm(d, family="weibull"), MixedGLMError, "weibull"),
    ("formula", lambda d: _glmm(d, "y ~ x + (1 | g"), FormulaError, "never closed"),
    ("text-y", lambda d: _glmm(_with(d, y=d.f)), DataError, "outcome 'y' is text"),
    ("clogit-level", lambda d: _clogit(d, level=150), OptionError, "level=150"),
    ("clogit-inf", lambda d: _clogit(_with(d, x=np.inf)), DataError, "'x' has 300 infinite"),
    ("clogit-subset", lambda d: _clogit(d, subset="x2 >> 1"), SubsetError, "x2 >> 1"),
    ("clogit-maxiter", lambda d: _clogit(d, maxiter=-1), OptionError, "maxiter"),
    ("clogit-group", lambda d: mg.clogit("y ~ x", d, "h"), DataError, "'h' not found"),
    ("xtpoisson-level", lambda d: mg.xtpoisson_fe("count ~ x", d, "g", level=1), OptionError, "1"),
    ("hybrid-level", lambda d: _hybrid(d, level=0.9), OptionError, "did you mean 90?"),
    ("hybrid-percentage", lambda d: _hybrid(d, percentage=-5), OptionError, "percentage=-5"),
    ("hybrid-nagq", lambda d: _hybrid(d, nagq=0), OptionError, "nagq"),
    ("hybrid-inf", lambda d: _hybrid(_with(d, x=np.inf)), DataError, "infinite"),
    ("hybrid-subset", lambda d: _hybrid(d, subset="!sample"), SubsetError, "'!' is not Python"),
]


@pytest.mark.parametrize(
    ("call", "error", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_raises_a_named_error(frame, call, error, text):
    with pytest.raises(MixedGLMError) as info:
        call(frame)
    assert isinstance(info.value, error), repr(info.value)
    # the first line names the culprit (a formula error adds a line pointing at it)
    assert text in str(info.value).splitlines()[0]


@pytest.fixture(scope="module")
def fitted(frame):
    return _glmm(frame, "y ~ x + C(f) + (1 | g)", method="laplace")


@pytest.fixture(scope="module")
def conditional(frame):
    return _clogit(frame)


RESULT_CASES = [
    ("conf_int", lambda r: r.conf_int(level=0), "level=0"),
    ("summary", lambda r: r.summary(level=150), "level=150"),
    ("to_frame", lambda r: r.to_frame(level=5), "level=5"),
    ("sd", lambda r: r.sd(level=100), "level=100"),
    ("to_dict", lambda r: r.to_dict(level=-1), "level=-1"),
]


@pytest.mark.parametrize(
    ("call", "text"), [c[1:] for c in RESULT_CASES], ids=[c[0] for c in RESULT_CASES]
)
def test_result_levels_are_checked(fitted, call, text):
    with pytest.raises(OptionError, match=text):
        call(fitted)


def test_conditional_result_level_is_checked(conditional):
    with pytest.raises(OptionError, match="level=0"):
        conditional.conf_int(level=0)


PREDICT_CASES = [
    ("new-level", lambda d: d.assign(f="d"), {}, "factor 'f' has new level 'd'"),
    ("no-group", lambda d: d.drop(columns="g"), {}, "no column 'g'"),
    ("no-covariate", lambda d: d.drop(columns="x"), {}, "lack the variable 'x'"),
    ("missing-id", lambda d: d.assign(g=np.nan), {}, "no value of the grouping variable 'g'"),
    ("text-id", lambda d: d.assign(g="abc"), {}, "cluster id 'abc' in 'g' is not a number"),
    ("kind", lambda d: d, {"kind": "odds"}, "kind must be one of"),
    ("not-a-frame", lambda d: d.to_numpy(), {}, "must be a pandas DataFrame"),
]


@pytest.mark.parametrize(
    ("make", "kw", "text"), [c[1:] for c in PREDICT_CASES], ids=[c[0] for c in PREDICT_CASES]
)
def test_bad_new_data_for_predictions(fitted, frame, make, kw, text):
    with pytest.raises(MixedGLMError) as info:
        fitted.predict(make(frame.head(10)), **kw)
    assert text in str(info.value)
    assert isinstance(info.value, PredictionError | MixedGLMError)


def test_the_api_suite_is_large_enough():
    assert len(CASES) + len(RESULT_CASES) + len(PREDICT_CASES) >= 40


def test_cluster_ids_are_matched_by_value(fitted, frame):
    new = frame.head(20)
    expected = fitted.predict(new, kind="eta").to_numpy()
    for ids in (new["g"].astype(str), new["g"].astype(float), new["g"].astype("category")):
        assert fitted.predict(new.assign(g=ids), kind="eta").to_numpy() == pytest.approx(expected)
    # the random effects are used: not the fixed part alone
    xb = fitted.predict(new, kind="xb").to_numpy()
    assert np.max(np.abs(expected - xb)) > 1e-3


def test_text_cluster_ids_match_numbers(frame):
    res = _glmm(frame.assign(g="c" + frame["g"].astype(str)), method="laplace")
    new = frame.head(5).assign(g="c" + frame["g"].head(5).astype(str))
    eta = res.predict(new, kind="eta").to_numpy()
    effects = res.random_effects(se=False).loc[new["g"], "_cons"].to_numpy()
    assert eta == pytest.approx(res.predict(new, kind="xb").to_numpy() + effects)


def test_zero_effects_on_request(fitted, frame):
    new = frame.head(10).drop(columns="g")
    assert fitted.predict(new, kind="eta", u0=True).to_numpy() == pytest.approx(
        fitted.predict(new, kind="xb").to_numpy()
    )
    marginal = fitted.predict(new, conditional=False)
    assert np.all((marginal > 0) & (marginal < 1))


def test_an_unexpected_internal_error_is_one_line_exit_1(monkeypatch, capsys, tmp_path):
    from mixedglm import cli
    from mixedglm.models import glmm as glmm_module

    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(glmm_module, "glmm", broken)
    data = tmp_path / "d.csv"
    pd.DataFrame({"y": [0, 1], "x": [1.0, 2.0], "g": [1, 2]}).to_csv(data, index=False)
    out = tmp_path / "o.json"
    assert cli.main(["fit", str(data), F, "--json", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "internal error" in err[0] and "bug" in err[0] and "RuntimeError: boom" in err[0]
    assert not out.exists()
