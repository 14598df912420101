"""Property-based tests: random small data frames, with missing values, constant columns, tiny
clusters and extreme scales, give a result or a MixedGLMError, never another exception.

Few examples of small data and few iterations (a fit that stops early is a result with a
ConvergenceWarning) keep them fast; the GLMM ones are marked slow all the same. numpy's
floating-point warnings inside mixedglm are errors here too (pyproject's filterwarnings).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedglm as mg
from mixedglm.errors import ConvergenceWarning, MixedGLMError

SETTINGS = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCALES = st.sampled_from([1e-8, 1e-3, 1.0, 1e3, 1e8, 1e14])


@st.composite
def frames(draw) -> pd.DataFrame:
    """Up to 8 clusters of 1 to 5 rows: y binary, c a count, yc continuous, x at a random
    scale with some missing values, k constant, f a factor with a rare level."""
    sizes = draw(st.lists(st.integers(1, 5), min_size=2, max_size=8))
    n = sum(sizes)
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    scale = draw(SCALES)
    x = rng.normal(size=n) * scale
    n_missing = draw(st.integers(0, max(0, n // 3)))
    x[rng.choice(n, n_missing, replace=False)] = np.nan
    y = rng.integers(0, 2, n)
    if draw(st.booleans()):  # y separated by x
        y = (np.nan_to_num(x) > 0).astype(int)
    return pd.DataFrame(
        {
            "g": np.repeat(np.arange(len(sizes)), sizes),
            "y": y,
            "c": rng.poisson(1.0, n),
            "yc": rng.normal(size=n) * draw(SCALES),
            "x": x,
            "k": 1.0,
            "f": rng.choice(["a", "b", "c"], n, p=[0.6, 0.35, 0.05]),
        }
    )


def _either(call) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            res = call()
        except MixedGLMError as err:
            assert str(err).strip()
            return
    table = str(res.summary())
    assert table.strip()
    res.to_dict()


@pytest.mark.slow
@SETTINGS
@given(frames(), st.sampled_from(["y ~ x + (1 | g)", "y ~ x + k + C(f) + (1 | g)"]))
def test_glmm_logit(data, formula):
    _either(lambda: mg.glmm(formula, data, method="laplace", maxiter=15, quiet=True))


@pytest.mark.slow
@SETTINGS
@given(frames(), st.sampled_from(["poisson", "gaussian"]))
def test_glmm_counts_and_gaussian(data, family):
    outcome = "c" if family == "poisson" else "yc"
    _either(
        lambda: mg.glmm(
            f"{outcome} ~ x + (1 | g)",
            data,
            family=family,
            method="laplace",
            maxiter=15,
            quiet=True,
        )
    )


@SETTINGS
@given(frames(), st.sampled_from(["y ~ x", "y ~ x + k + C(f)"]))
def test_clogit(data, formula):
    _either(lambda: mg.clogit(formula, data, "g", quiet=True))


@SETTINGS
@given(frames())
def test_xtpoisson(data):
    _either(lambda: mg.xtpoisson_fe("c ~ x", data, "g", quiet=True))


@pytest.mark.slow
@SETTINGS
@given(frames())
def test_hybrid(data):
    _either(
        lambda: mg.hybrid("yc ~ x", data, cluster="g", method="laplace", maxiter=15, quiet=True)
    )
