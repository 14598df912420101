"""Small fitted models shared by the usability tests (module-scoped: fitted once)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg


def simulated_logit(seed: int = 3, groups: int = 30, size: int = 8) -> pd.DataFrame:
    """A small random-intercept logit panel with a 0/1 covariate and a count outcome."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), size)
    x = rng.normal(5.0, 2.0, g.size)
    f = rng.integers(0, 2, g.size)
    u = rng.normal(0.0, 0.8, groups)[g]
    eta = -0.3 + 0.4 * (x - 5.0) / 2.0 + 0.5 * f + u
    y = (rng.random(g.size) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    t = rng.uniform(0.5, 3.0, g.size)
    count = rng.poisson(np.exp(0.2 + 0.1 * x + 0.5 * u) * t)
    return pd.DataFrame({"y": y, "x": x, "f": f, "g": g, "t": t, "count": count})


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return simulated_logit()


@pytest.fixture(scope="module")
def logit_fit(panel):
    return mg.glmm("y ~ x + C(f) + (1 | g)", panel, nolog=True, quiet=True)
