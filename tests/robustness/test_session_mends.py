"""Small guarantees added with the reliability merge: each fails without its fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.errors import MixedGLMError, NotFiniteError
from mixedglm.families.dispatch import _function_fingerprint
from mixedglm.optim import Evaluation, newton_maximize


def test_a_log_likelihood_that_overflows_at_the_start_is_a_named_error():
    def overflowing(x: np.ndarray, order: int) -> Evaluation:
        return Evaluation(-np.inf)

    with pytest.raises(NotFiniteError, match="rescale covariates") as info:
        newton_maximize(overflowing, np.zeros(2))
    # a MixedGLMError for the user, still a FloatingPointError for the fitting stages
    assert isinstance(info.value, MixedGLMError) and isinstance(info.value, FloatingPointError)


def test_plot_coefficients_refuses_a_non_boolean_eform():
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(20), 8)
    x = rng.normal(size=g.size)
    y = (rng.random(g.size) < 1 / (1 + np.exp(-x))).astype(int)
    res = mg.glmm("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), quiet=True)
    with pytest.raises(MixedGLMError, match="eform must be True or False"):
        res.plot_coefficients(eform="zz")


def test_a_function_without_source_is_fingerprinted_by_its_code():
    namespace: dict = {}
    exec("def f(y):\n    return 2 * y\n", namespace)  # no file: inspect cannot read it
    exec("def g(y):\n    return 3 * y\n", namespace)
    f, g = namespace["f"], namespace["g"]
    assert _function_fingerprint(f) == _function_fingerprint(f)
    assert _function_fingerprint(f) != _function_fingerprint(g)
