"""Frequency and sampling weights of a GLMM (Stata's ``[fw=]``, ``[pw=]`` and weights of
the clusters): checks of the weight variables, and their values on the estimation rows.

* Level-1 frequency weights (``fweight="k"``): a row of weight ``k`` counts as ``k`` rows.
* Level-1 sampling weights (``pweight="w"``): each observation's log-density is multiplied by
  its weight inside the integral over the random effects (a pseudo-likelihood), used as
  given (not rescaled, as Stata); robust standard errors are implied.
* Cluster weights (``group_weights={"g": "wg"}``): cluster ``j``'s log-likelihood, score and
  Hessian are multiplied by ``w_j`` (frequency weights: ``j`` counts as ``w_j`` copies;
  with level-1 pweights, sampling weights of the clusters). Constant within each cluster.

The weighting happens in the quadrature kernel (``ClusterArrays.weights`` and
``cluster_weights``, see :mod:`mixedglm.models.weights`). ``nobs`` is the sum of the
frequency weights, as Stata counts it (with cluster weights, rows times their cluster's
weight); with sampling weights it is the number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mixedglm.errors import DataError, MixedGLMError

__all__ = [
    "WeightInfo",
    "check_weight_counts",
    "check_weights",
    "group_weight_vector",
    "observation_weights",
    "weight_counts",
    "weight_roles",
]


@dataclass(frozen=True)
class WeightInfo:
    """What was weighted: ``fweight``/``pweight`` variable names, ``group`` the cluster
    weights' variable, the number of observations as Stata counts it, and each estimation
    row's total weight (``rows``, design order; margins average with it)."""

    fweight: str | None = None
    pweight: str | None = None
    group: str | None = None
    nobs: int | float | None = None
    rows: np.ndarray | None = field(default=None, repr=False, compare=False)

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
    if group_weights is not None and not isinstance(group_weights, dict):
        raise MixedGLMError(
            "group_weights must be a dict {grouping variable: weight variable}, e.g. "
            f"{{'{group or 'g'}': 'wg'}}, not {type(group_weights).__name__} {group_weights!r}"
        )
    if fweight and pweight:
        raise MixedGLMError("give fweight= or pweight=, not both (Stata allows one weight type)")
    if fweight:
        w = _column(frame, fweight, "fweight")
        if np.any(w != np.round(w)):
            raise DataError(f"fweight variable '{fweight}' must hold whole numbers (frequencies)")
    if pweight:
        _column(frame, pweight, "pweight")
    for name, var in (group_weights or {}).items():
        if group is not None and name != group:
            raise MixedGLMError(
                f"group_weights names '{name}', but the model's grouping variable is '{group}'"
            )
        _column(frame, var, "group weight")


def observation_weights(rows: pd.DataFrame, var: str, role: str) -> np.ndarray:
    """The weights of the estimation rows (design order)."""
    return _column(rows, var, role)


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


def weight_roles(
    fweight: str | None, pweight: str | None, group_weight: str | None
) -> list[tuple[str, str]]:
    """The weight variables with their roles, in the order :func:`check_weights` checks
    them."""
    roles = (("fweight", fweight), ("pweight", pweight), ("group weight", group_weight))
    return [(role, var) for role, var in roles if var]


def weight_counts(values: pd.Series) -> dict:
    """What :func:`check_weights` checks of a part of the rows (summed over the parts of
    data split in partitions): missing or non-numeric values, negative or infinite ones,
    and fractions."""
    numbers = pd.to_numeric(values, errors="coerce")
    good = numbers.dropna().to_numpy(dtype=float)
    return {
        "missing": int(numbers.isna().sum()),
        "negative": bool(np.any(good < 0) or not np.all(np.isfinite(good))),
        "fraction": bool(np.any(good[np.isfinite(good)] != np.round(good[np.isfinite(good)]))),
    }


def check_weight_counts(roles: list[tuple[str, str]], parts: list[dict]) -> None:
    """:func:`check_weights`' value checks from the parts' :func:`weight_counts` by
    variable (``parts``: one dict ``{variable: counts}`` per part), with its messages."""
    for role, var in roles:
        missing = sum(p[var]["missing"] for p in parts)
        if missing:
            raise DataError(f"{role} variable '{var}' is missing or not numeric in {missing} rows")
        if any(p[var]["negative"] for p in parts):
            raise DataError(f"{role} variable '{var}' has negative or infinite values")
        if role == "fweight" and any(p[var]["fraction"] for p in parts):
            raise DataError(f"fweight variable '{var}' must hold whole numbers (frequencies)")
