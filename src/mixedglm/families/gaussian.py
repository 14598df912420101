"""Gaussian outcomes with the identity link (Stata's ``mixed``/``meglm`` by ML).

The ancillary parameter is the log of the residual SD (``lnsig_e``); the residual variance
is reported with the variance components, not as an ancillary row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mixedglm.families.base import Family
from mixedglm.families.dispatch import KernelSet
from mixedglm.jit import kernel

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@kernel
def identity_derivs(y: float, n: float, eta: float, aux: np.ndarray):
    inv_var = math.exp(-2.0 * aux[0])
    r = y - eta
    return -aux[0] - 0.5 * r * r * inv_var, r * inv_var, -inv_var, 0.0


@kernel
def identity_aux_derivs(y, n, eta, aux, l_a, l_ea, l_eea, l_aa) -> None:
    inv_var = math.exp(-2.0 * aux[0])
    r = y - eta
    l_a[0] = -1.0 + r * r * inv_var
    l_ea[0] = -2.0 * r * inv_var
    l_eea[0] = 2.0 * inv_var
    l_aa[0, 0] = -2.0 * r * r * inv_var


@dataclass(frozen=True)
class Gaussian(Family):
    """Normal outcome, identity link; ``aux = log sigma_e``."""

    links: ClassVar[tuple[str, ...]] = ("identity",)
    default_link: ClassVar[str] = "identity"

    def kernels(self) -> KernelSet:
        return KernelSet(identity_derivs, identity_aux_derivs)

    @property
    def aux_names(self) -> tuple[str, ...]:
        return ("lnsig_e",)

    def aux_start(self, y: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return np.array([0.5 * np.log(max(float(np.var(y)), 1e-12))])

    def log_constant(self, y: np.ndarray, trials: np.ndarray) -> np.ndarray:
        return np.full(np.shape(y), -_LOG_SQRT_2PI)

    @property
    def model_words(self) -> str:
        return "linear"

    @property
    def title(self) -> str:
        return "Mixed-effects ML regression"

    def header_lines(self) -> list[str]:
        return []

    @property
    def has_xt_layout(self) -> bool:
        return True

    @property
    def xt_title(self) -> str:
        return "Random-effects ML regression"
