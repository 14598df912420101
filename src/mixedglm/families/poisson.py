"""Poisson counts with the log link (Stata's ``mepoisson``/``xtpoisson``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import gammaln

from mixedglm.errors import DataError
from mixedglm.families.base import Family, value_examples
from mixedglm.families.dispatch import KernelSet
from mixedglm.jit import kernel


@kernel
def log_derivs(y: float, n: float, eta: float, aux: np.ndarray):
    mu = math.exp(eta)
    return y * eta - mu, y - mu, -mu, -mu


@kernel
def log_fisher(n: float, eta: float) -> tuple[float, float]:
    mu = math.exp(eta)
    return mu, mu


def check_counts(y: np.ndarray, name: str, words: str) -> None:
    """Counts must be non-negative integers (shared with the negative binomial)."""
    what = f"for a {words} model"
    if np.any(y < 0):
        raise DataError(
            f"outcome '{name}' has negative values ({value_examples(y[y < 0])}); counts "
            f"must be >= 0 {what}"
        )
    if np.any(y != np.round(y)):
        raise DataError(
            f"outcome '{name}' has non-integer values ({value_examples(y[y != np.round(y)])}); "
            f"counts must be integers {what}"
        )


@dataclass(frozen=True)
class Poisson(Family):
    """Poisson counts, log link."""

    links: ClassVar[tuple[str, ...]] = ("log",)
    default_link: ClassVar[str] = "log"

    def kernels(self) -> KernelSet:
        return KernelSet(log_derivs, fisher_weight=log_fisher)

    def log_constant(self, y: np.ndarray, trials: np.ndarray) -> np.ndarray:
        return -gammaln(y + 1.0)

    def check_outcome(self, y: np.ndarray, trials: np.ndarray | None, name: str) -> None:
        check_counts(y, name, self.model_words)

    @property
    def model_words(self) -> str:
        return "Poisson"

    @property
    def uses_glm_title(self) -> bool:
        return False

    @property
    def has_xt_layout(self) -> bool:
        return True
