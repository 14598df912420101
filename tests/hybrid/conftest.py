"""Fixtures of the hybrid-model tests: simulated panels (level-1 covariates correlated with
the cluster effect, so within and between effects differ; cluster-level covariates; missing
values; gaussian, binary and count outcomes) and hybrid results built from the seed's
xthybrid estimates without fitting."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mixedglm.design.hybrid import HybridDecomposition, VariableTerms
from mixedglm.results.glmm import GLMMResults
from mixedglm.results.hybrid import HybridResults

from fixed_results import fixed_glmm_results


def simulate_panel(seed: int = 11, n_groups: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 12, size=n_groups)
    g = np.repeat(np.arange(n_groups) + 100, sizes)
    n = g.shape[0]
    u = rng.normal(size=n_groups)[g - 100]
    x1 = 0.8 * u + rng.normal(size=n)  # correlated with the cluster effect
    x2 = rng.normal(size=n_groups)[g - 100] * 0.5 + rng.normal(size=n)
    z = rng.binomial(1, 0.4, size=n_groups)[g - 100].astype(float)  # cluster level
    eta = 0.5 * x1 - 0.3 * x2 + 0.4 * z + 0.7 * u
    frame = pd.DataFrame(
        {
            "g": g,
            "x1": x1,
            "x2": x2,
            "z": z,
            "y": eta + rng.normal(size=n),
            "yb": rng.binomial(1, 1 / (1 + np.exp(-(eta - 0.2)))),
            "yc": rng.poisson(np.exp(0.3 * eta)),
        }
    )
    frame.loc[[3, 17, 40], "x2"] = np.nan  # listwise deletion changes the cluster means
    frame.loc[25, "y"] = np.nan
    return frame


@pytest.fixture(scope="session")
def panel() -> pd.DataFrame:
    return simulate_panel()


USE = ["nauthors", "npages", "nrefs", "jifperc", "careerstage"]
RESIDUAL = ["R__female", "R__socialscience", "R__usa"]
NAMES = RESIDUAL + [f"W__{v}" for v in USE] + [f"B__{v}" for v in USE] + ["_cons"]
#: the seed's estimates, in NAMES order
BETA = [
    -0.1694,
    0.0924,
    0.1860,
    0.0824,
    0.0106,
    0.0068,
    0.0388,
    -0.0534,
    0.0207,
    0.0428,
    0.0071,
    0.0518,
    -0.0063,
    -5.1434,
]
VAR_CONS = 0.4649
LOGLIK = -208815.0  # the seed prints ll -2.088e+05, aic 4.177e+05 and bic 4.178e+05
WALD = 37783.1969


def standard_errors() -> np.ndarray:
    """z = 10 for every coefficient except R__female, whose z makes the Wald statistic of
    the twelve others plus it equal the seed's 37783.1969; the constant's z is 50."""
    b = np.abs(np.array(BETA))
    se = b / 10.0
    rest = WALD - 100.0 * 12
    se[0] = b[0] / math.sqrt(rest)
    se[-1] = b[-1] / 50.0
    return se


def fixed_glmm(cre: bool = False) -> GLMMResults:
    names = [x.replace("B__", "D__") for x in NAMES] if cre else NAMES
    return fixed_glmm_results(
        names, np.array(BETA), standard_errors(), math.sqrt(VAR_CONS), 0.01, LOGLIK, 16000.0, 7
    )


def fixed_hybrid(cre: bool = False) -> HybridResults:
    prefix = "D" if cre else "B"
    dec = HybridDecomposition(
        frame=pd.DataFrame(),
        response="topq",
        cluster="id",
        cre=cre,
        residual=tuple(RESIDUAL),
        terms=tuple(VariableTerms(v, f"W__{v}", f"{prefix}__{v}") for v in USE),
        skipped=(),
        within_percent={},
        n_dropped=0,
        notes=(),
    )
    return HybridResults(fixed_glmm(cre), dec, "binomial", "logit")


@pytest.fixture
def seed_hybrid() -> HybridResults:
    return fixed_hybrid()


@pytest.fixture
def seed_cre() -> HybridResults:
    return fixed_hybrid(cre=True)
