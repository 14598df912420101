"""A family defined only here (a Poisson with the square-root link) goes through AGHQ,
Laplace and the table without any change to the package: families are plug-ins."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numba
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import mixedglm as mg
from mixedglm.families.base import Family
from mixedglm.families.dispatch import KernelSet


@numba.njit(cache=True)
def _sqrt_derivs(y, n, eta, aux):
    # mu = eta^2 (eta > 0): l = y log mu - mu = 2 y log eta - eta^2
    return (
        2.0 * y * math.log(eta) - eta * eta,
        2.0 * y / eta - 2.0 * eta,
        -2.0 * y / (eta * eta) - 2.0,
        4.0 * y / (eta * eta * eta),
    )


@dataclass(frozen=True)
class SqrtPoisson(Family):
    """Poisson counts with E[y] = eta^2."""

    links: ClassVar[tuple[str, ...]] = ("sqrt",)
    default_link: ClassVar[str] = "sqrt"

    def kernels(self) -> KernelSet:
        return KernelSet(_sqrt_derivs)

    def log_constant(self, y: np.ndarray, trials: np.ndarray) -> np.ndarray:
        return -special.gammaln(y + 1.0)

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        return np.asarray(eta, dtype=float) ** 2

    def link_start(self, mean: float, mean_offset: float) -> float:
        return math.sqrt(mean) - mean_offset

    @property
    def model_words(self) -> str:
        return "square-root Poisson"


FAMILY = SqrtPoisson("sqrtpoisson", "sqrt")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(40), 6)
    x = rng.uniform(0, 1, groups.size)
    u = rng.normal(scale=0.3, size=40)[groups]
    eta = 2.0 + 0.8 * x + u
    return pd.DataFrame({"y": rng.poisson(eta**2), "x": x, "g": groups})


def _brute_force_loglik(df: pd.DataFrame, beta: np.ndarray, sd: float) -> float:
    """Sum over clusters of the integral of the Poisson likelihood over N(0, sd^2)."""
    total = 0.0
    for _, part in df.groupby("g"):
        eta0 = beta[0] * part["x"].to_numpy() + beta[1]
        y = part["y"].to_numpy()

        def integrand(b, eta0=eta0, y=y):
            return math.exp(np.sum(stats.poisson.logpmf(y, (eta0 + b) ** 2))) * stats.norm.pdf(
                b, scale=sd
            )

        total += math.log(integrate.quad(integrand, -8 * sd, 8 * sd, epsabs=0, epsrel=1e-11)[0])
    return total


@pytest.mark.parametrize(("nagq", "tol"), [(12, 1e-6), (1, 0.05)])
def test_plugin_family_fits_and_matches_brute_force(data, nagq, tol):
    res = mg.glmm("y ~ x + (1 | g)", data, family=FAMILY, nagq=nagq, quiet=True)
    assert res.converged
    beta = res.params.to_numpy()
    sd = abs(float(res.params_all[2]))  # theta of one random intercept = its SD
    # AGHQ with 12 points equals the brute-force integral at its own estimates
    assert res.loglik == pytest.approx(_brute_force_loglik(data, beta, sd), abs=tol)
    table = res.summary()
    assert "square-root Poisson" in table or "sqrtpoisson" in table
    assert "_cons" in table and "var(_cons)" in table
    # the gradient is zero at the estimates (the exact gradient of the plug-in's objective)
    assert res.opt.max_abs_gradient < 1e-4
