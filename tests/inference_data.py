"""Simulated panels and a quiet fit for the inference tests (tests/inference)."""

from __future__ import annotations

import numpy as np
import pandas as pd

import mixedglm as mg


def simulate_logit(seed: int = 11, groups: int = 50, size: int = 10) -> pd.DataFrame:
    """A random-intercept logit with a continuous, a binary, a 3-level factor covariate and a
    random slope on x; ``pair`` joins clusters two by two."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), size)
    n = g.size
    x = rng.normal(size=n)
    d = rng.binomial(1, 0.4, n)
    f = rng.integers(0, 3, n)
    u = rng.normal(scale=0.8, size=groups)[g]
    s = rng.normal(scale=1.0, size=groups)[g]
    eta = -0.3 + 0.7 * x + 0.2 * x**2 - 0.5 * d + 0.4 * (f == 1) - 0.6 * (f == 2) + u + s * x
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "x": x, "d": d, "f": f, "g": g, "pair": g // 2})


def fit(formula: str, data: pd.DataFrame, **kw):
    """A quiet :func:`mixedglm.glmm` fit."""
    kw.setdefault("nolog", True)
    kw.setdefault("quiet", True)
    return mg.glmm(formula, data, **kw)
