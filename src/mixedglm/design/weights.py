"""Frequency and sampling weights of a GLMM (Stata's ``[fw=]``, ``[pw=]`` and
``pweight()`` at the cluster level): checks of the weight variables and the orchestration
of a weighted fit.

* Level-1 frequency weights (``fweight="k"``): a row of weight ``k`` counts as ``k`` rows.
  Until the quadrature kernel takes per-observation weights, the rows are expanded (each
  repeated ``k`` times) before the fit: exactly Stata's definition, at the cost of the
  expanded data's size.
* Cluster frequency weights (``group_weights={"g": "wg"}``): cluster ``j`` counts as ``w_j``
  copies of itself; ``w_j`` multiplies the cluster's log-likelihood, score and Hessian
  (:mod:`mixedglm.engines.weighted`). The variable must be constant within each cluster.
* Level-1 sampling weights (``pweight``) need the weights inside the kernel (each
  observation's log-density times its weight) and are refused for now.

``nobs`` is the sum of the weights, as Stata counts it (for cluster weights, the rows of
the clusters times their weights); the number of groups shown is the number of distinct
clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixedglm.errors import DataError, MixedGLMError

__all__ = ["WeightInfo", "check_weights", "expand_frequency", "group_weight_vector"]


@dataclass(frozen=True)
class WeightInfo:
    """What was weighted: ``fweight``/``pweight`` variable names, ``group`` the cluster
    weights' variable, and the weighted number of observations."""

    fweight: str | None = None
    pweight: str | None = None
    group: str | None = None
    nobs: int | float | None = None

    def to_dict(self) -> dict:
        return {
            "fweight": self.fweight,
            "pweight": self.pweight,
            "group_weight": self.group,
            "nobs": self.nobs,
        }


def _column(frame: pd.DataFrame, name: str, role: str) -> np.ndarray:
    if name not in frame.columns:
        raise DataError(f"{role} variable '{name}' not found in the data")
    values = pd.to_numeric(frame[name], errors="coerce")
    if values.isna().any():
        n = int(values.isna().sum())
        raise DataError(f"{role} variable '{name}' is missing or not numeric in {n} rows")
    out = values.to_numpy(dtype=float)
    if np.any(out < 0) or not np.all(np.isfinite(out)):
        raise DataError(f"{role} variable '{name}' has negative or infinite values")
    return out


def check_weights(
    frame: pd.DataFrame,
    fweight: str | None,
    pweight: str | None,
    group_weights: dict[str, str] | None,
    group: str | None,
) -> None:
    """Refuse what is not supported, before any work."""
    if fweight and pweight:
        raise MixedGLMError("give fweight= or pweight=, not both (Stata allows one weight type)")
    if pweight:
        raise MixedGLMError(
            f"pweight='{pweight}': level-1 sampling weights need per-observation weights in the "
            "quadrature kernel, which are not available yet; use fweight= for frequency weights"
        )
    if fweight:
        w = _column(frame, fweight, "fweight")
        if np.any(w != np.round(w)):
            raise DataError(f"fweight variable '{fweight}' must hold whole numbers (frequencies)")
    for name, var in (group_weights or {}).items():
        if group is not None and name != group:
            raise MixedGLMError(
                f"group_weights names '{name}', but the model's grouping variable is '{group}'"
            )
        _column(frame, var, "group weight")


def expand_frequency(frame: pd.DataFrame, fweight: str) -> pd.DataFrame:
    """Each row repeated as many times as its frequency weight (rows of weight 0 dropped)."""
    w = _column(frame, fweight, "fweight").astype(np.int64)
    return frame.iloc[np.repeat(np.arange(len(frame)), w)]


def group_weight_vector(
    values: pd.Series, group_codes: np.ndarray, starts: np.ndarray, var: str, group: str
) -> np.ndarray:
    """One weight per cluster, checked constant within each cluster (rows sorted by it)."""
    w = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    first = w[starts[:-1]]
    if np.any(w != first[group_codes]):
        raise DataError(
            f"group weight variable '{var}' is not constant within clusters of {group}: a "
            "cluster's weight must be the same in all its rows"
        )
    if np.any(first <= 0):
        raise DataError(f"group weight variable '{var}' must be positive")
    return first
