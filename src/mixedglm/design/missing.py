"""Listwise deletion and Stata's note about the observations it drops (one wording for every
model kind)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixedglm.errors import DataError


def dropped_note(n: int, reason: str) -> str:
    """``note: 3 observations dropped because of <reason>`` (singular for one)."""
    return f"note: {n} observation{'s' if n != 1 else ''} dropped because of {reason}"


@dataclass(frozen=True)
class Listwise:
    """Which rows of a frame have no missing value (``keep``) and how many values each
    variable misses (``counts``, in the frame's column order)."""

    keep: np.ndarray
    counts: pd.Series

    @property
    def n_dropped(self) -> int:
        return int((~self.keep).sum())

    def detail(self, all_variables: bool = False) -> str:
        """``x 2, z 1``: the missing values per variable (all variables, or those missing
        any)."""
        return ", ".join(f"{k} {int(v)}" for k, v in self.counts.items() if v or all_variables)

    def notes(self) -> list[str]:
        """Stata's note when rows are dropped, else nothing."""
        return missing_notes({str(k): int(v) for k, v in self.counts.items()}, self.n_dropped)


def missing_notes(counts: Mapping[str, int], n_dropped: int) -> list[str]:
    """Stata's note about ``n_dropped`` rows dropped for missing values, with the counts per
    variable (those missing any, in order); nothing when no row is dropped. The data may be
    in memory or split over the partitions of a Dask fit (their counts summed)."""
    if not n_dropped:
        return []
    detail = ", ".join(f"{k} {int(v)}" for k, v in counts.items() if v)
    return [dropped_note(n_dropped, f"missing values ({detail})")]


def no_rows_left(n_dropped: int, counts: Mapping[str, int]) -> DataError:
    """The error when listwise deletion leaves no row: how many were dropped and the
    missing values of every variable (in memory, or summed over a Dask fit's partitions)."""
    per_variable = ", ".join(f"{k} {int(v)}" for k, v in counts.items())
    return DataError(
        f"no observations left after dropping {n_dropped} with missing values "
        f"(missing per variable: {per_variable})"
    )


def listwise(frame: pd.DataFrame) -> Listwise:
    """The rows of ``frame`` without a missing value in any of its columns."""
    missing = frame.isna()
    return Listwise(~missing.any(axis=1).to_numpy(), missing.sum())
