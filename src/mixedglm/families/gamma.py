"""Gamma outcomes with the log link (Stata's ``meglm, family(gamma)``): Var = s mu^2,
shape 1/s, aux = log s (reported as ``/logs``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mixedglm.errors import DataError
from mixedglm.families.base import Family, Row, plain_row, value_examples
from mixedglm.families.dispatch import KernelSet
from mixedglm.families.polygamma import digamma, trigamma
from mixedglm.jit import kernel


@kernel
def log_derivs(y: float, n: float, eta: float, aux: np.ndarray):
    """l = k (log k + log y - eta - y/mu) - lgamma(k), k = 1/s; -log y is the constant."""
    a = aux[0]
    k = math.exp(-a)
    z = y * math.exp(-eta)
    l0 = k * (-a + math.log(y) - eta - z) - math.lgamma(k)
    return l0, k * (z - 1.0), -k * z, k * z


@kernel
def log_aux_derivs(y, n, eta, aux, l_a, l_ea, l_eea, l_aa) -> None:
    # a = log s, shape k = 1/s; dl/dk = log k + log y - eta - y/mu + 1 - psi(k)
    a = aux[0]
    k = math.exp(-a)
    z = y * math.exp(-eta)
    g = -a + math.log(y) - eta - z + 1.0 - digamma(k)
    l_a[0] = -k * g
    l_ea[0] = -k * (z - 1.0)
    l_eea[0] = k * z
    l_aa[0, 0] = k * g + k - k * k * trigamma(k)


@dataclass(frozen=True)
class Gamma(Family):
    """Positive continuous outcome, log link."""

    links: ClassVar[tuple[str, ...]] = ("log",)
    default_link: ClassVar[str] = "log"

    def kernels(self) -> KernelSet:
        return KernelSet(log_derivs, log_aux_derivs)

    @property
    def aux_names(self) -> tuple[str, ...]:
        return ("logs",)

    def aux_start(self, y: np.ndarray, offset: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        mean = float(np.mean(y))
        return np.array([np.log(min(max(float(np.var(y)) / mean**2, 1e-6), 1e3))])

    def ancillary_rows(self, aux: np.ndarray, cov_aux: np.ndarray, level: float) -> list[Row]:
        return [plain_row("/logs", float(aux[0]), float(cov_aux[0, 0]), level)]

    def log_constant(self, y: np.ndarray, trials: np.ndarray) -> np.ndarray:
        return -np.log(y)

    def check_outcome(self, y: np.ndarray, trials: np.ndarray | None, name: str) -> None:
        bad = ~(y > 0)
        if np.any(bad):
            raise DataError(
                f"outcome '{name}' has {int(bad.sum())} value{'s' if bad.sum() != 1 else ''} "
                f"<= 0 ({value_examples(y[bad])}); a gamma model needs a positive outcome"
            )

    @property
    def model_words(self) -> str:
        return "gamma"
