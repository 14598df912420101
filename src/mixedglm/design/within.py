"""Data preparation for conditional fixed-effects models (``clogit``, ``xtlogit, fe``,
``xtpoisson, fe``): which groups, rows and covariates carry information.

Conditioning on each group's sufficient statistic removes every group whose outcome cannot
vary given that statistic (logit: all events or none; Poisson: a single row, or all counts
zero) and every covariate that is constant within all groups (it is absorbed by the group
effect). Covariates that are linear combinations of others after removing group means are
not identified either. The notes are worded as Stata prints them (``clogit.ado`` for the
logit, ``xtpoisson.ado`` for Poisson), each on one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mixedglm.design.collinear import find_collinear_gram
from mixedglm.errors import DataError

__all__ = ["OmittedColumn", "WithinDesign", "prepare_within"]

Kind = Literal["logit", "poisson"]

NO_WITHIN_VARIANCE = "no within-group variance"
COLLINEARITY = "collinearity"


@dataclass(frozen=True)
class OmittedColumn:
    """A covariate left out of the model: its position in the input ``X``, its name and why
    (``"no within-group variance"`` or ``"collinearity"``)."""

    index: int
    name: str
    reason: str


@dataclass(frozen=True)
class WithinDesign:
    """What a conditional model is fitted on, as a selection from the input arrays.

    Attributes
    ----------
    kind : "logit" or "poisson".
    rows : (N,) bool, rows kept (those of the informative groups).
    columns : (p_kept,) int64, indices of the kept columns of the input ``X``.
    names : names of the kept columns.
    omitted : the columns left out, in input order.
    starts : (G + 1,) int64, first kept row of each kept group within the kept rows, and
        the number of kept rows at the end (the ``starts`` of the conditional engines).
    group_codes : (G,) the input codes of the kept groups.
    n_obs, n_groups : kept rows and groups (Stata's ``e(N)``, ``e(N_g)``).
    group_size_min, group_size_avg, group_size_max : observations per kept group.
    n_obs_dropped, n_groups_dropped : rows and groups dropped as uninformative
        (Stata's ``e(N_drop)``, ``e(N_group_drop)``).
    multiple_positive : logit only: some group had more than one event (Stata's
        ``e(multiple)``; the likelihood is then the exact conditional one, not a softmax).
    notes : Stata's ``note:`` lines, in the order Stata prints them.
    """

    kind: str
    rows: np.ndarray
    columns: np.ndarray
    names: tuple[str, ...]
    omitted: tuple[OmittedColumn, ...]
    starts: np.ndarray
    group_codes: np.ndarray
    n_obs: int
    n_groups: int
    group_size_min: int
    group_size_avg: float
    group_size_max: int
    n_obs_dropped: int
    n_groups_dropped: int
    multiple_positive: bool
    notes: tuple[str, ...]

    def take_rows(self, a: np.ndarray) -> np.ndarray:
        """The kept rows of a row-aligned array (``y``, an offset), contiguous."""
        return np.ascontiguousarray(np.asarray(a)[self.rows])

    def take_X(self, X: np.ndarray) -> np.ndarray:
        """The kept rows and columns of ``X`` as a C-contiguous float64 array."""
        X = np.asarray(X, dtype=np.float64)
        return np.ascontiguousarray(X[np.ix_(self.rows, self.columns)])


def _plural(n: int) -> str:
    return "s" if n > 1 else ""


def group_starts(group_codes: np.ndarray) -> np.ndarray:
    """Start row of each run of equal codes, plus N; the codes must be sorted."""
    codes = np.asarray(group_codes).reshape(-1)
    if codes.size and np.any(codes[1:] < codes[:-1]):
        raise ValueError("rows must be sorted by group: group_codes must be non-decreasing")
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    return np.concatenate(([0], change, [codes.size])).astype(np.int64)


def validate_outcome(y: np.ndarray, kind: str, outcome: str) -> None:
    if not np.all(np.isfinite(y)):
        raise DataError(f"outcome {outcome} has missing or infinite values")
    if kind == "logit":
        bad = np.unique(y[(y != 0) & (y != 1)])
        if bad.size:
            shown = ", ".join(f"{v:g}" for v in bad[:5]) + (", ..." if bad.size > 5 else "")
            raise DataError(
                f"outcome {outcome} must be coded 0/1 for the conditional logit; "
                f"it also takes the values {shown}"
            )
    else:
        if np.any(y < 0):
            raise DataError(f"{outcome} must be greater than or equal to zero")
        bad = np.unique(y[y != np.floor(y)])
        if bad.size:
            shown = ", ".join(f"{v:g}" for v in bad[:5]) + (", ..." if bad.size > 5 else "")
            raise DataError(
                f"outcome {outcome} must be a count (non-negative integers) for the "
                f"conditional Poisson model; it also takes the values {shown}"
            )


def informative_groups(y: np.ndarray, starts: np.ndarray, kind: str) -> tuple[np.ndarray, dict]:
    """Which groups carry information, and the counts behind Stata's notes about the others
    (``kept``, ``multiple``, and per reason the groups and rows dropped). The counts of
    several parts of the data add up (:func:`add_counts`)."""
    sizes = np.diff(starts)
    cum = np.concatenate(([0.0], np.cumsum(y)))
    totals = cum[starts[1:]] - cum[starts[:-1]]
    if kind == "logit":
        keep = (totals > 0) & (totals < sizes)
        counts = {
            "multiple": bool(np.any(totals > 1)),
            "same": (int(np.sum(~keep)), int(sizes[~keep].sum())),
        }
    else:
        single = sizes == 1
        zero = (totals == 0) & ~single
        keep = ~single & ~zero
        counts = {
            "multiple": False,
            "single": (int(single.sum()), int(single.sum())),
            "zero": (int(zero.sum()), int(sizes[zero].sum())),
        }
    counts["kept"] = int(keep.sum())
    return keep, counts


def add_counts(parts: Sequence[dict]) -> dict:
    """The :func:`informative_groups` counts of several parts of the data, summed."""
    out: dict = {"kept": 0, "multiple": False}
    for c in parts:
        for key, value in c.items():
            if key == "multiple":
                out[key] = out[key] or value
            elif key == "kept":
                out[key] += value
            else:
                old = out.get(key, (0, 0))
                out[key] = (old[0] + value[0], old[1] + value[1])
    return out


def informative_notes(counts: dict, kind: str, outcome: str) -> list[str]:
    """Stata's notes about the groups without information; an error when none is left."""
    notes: list[str] = []
    if kind == "logit":
        if not counts["kept"]:
            raise DataError(
                f"outcome {outcome} does not vary in any group: every group has all positive "
                "or all negative outcomes, so the conditional likelihood carries no information"
            )
        if counts["multiple"]:
            notes.append("note: multiple positive outcomes within groups encountered.")
        ng, nobs = counts["same"]
        if ng:
            notes.append(
                f"note: {ng:,} group{_plural(ng)} ({nobs:,} obs) dropped because of all "
                "positive or all negative outcomes."
            )
        return notes
    n1 = counts["single"][0]
    if n1:
        notes.append(
            f"note: {n1} group{_plural(n1)} ({n1} obs) dropped because of only one obs per group"
        )
    nz, nzobs = counts["zero"]
    if nz:
        notes.append(
            f"note: {nz} group{_plural(nz)} ({nzobs} obs) dropped because of all zero outcomes"
        )
    if not counts["kept"]:
        raise DataError(
            f"no group carries information about the covariates: in every group outcome "
            f"{outcome} is all zero or there is only one observation"
        )
    return notes


def within_variance(Xk: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(p,) bool: the column varies within at least one group (exact comparison, as Stata)."""
    if Xk.shape[1] == 0:
        return np.zeros(0, dtype=bool)
    lo = starts[:-1]
    hi = np.maximum.reduceat(Xk, lo, axis=0)
    lo_ = np.minimum.reduceat(Xk, lo, axis=0)
    return np.any(hi != lo_, axis=0)


def demean(Xk: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Subtract each group's column means (the within transformation)."""
    sizes = np.diff(starts)
    means = np.add.reduceat(Xk, starts[:-1], axis=0) / sizes[:, None]
    return Xk - np.repeat(means, sizes, axis=0)


def check_finite(Xk: np.ndarray, names: Sequence[str]) -> None:
    """Refuse missing or infinite covariate values in the kept rows."""
    if not np.all(np.isfinite(Xk)):
        bad = [names[int(j)] for j in np.flatnonzero(~np.all(np.isfinite(Xk), axis=0))]
        raise DataError(f"covariates have missing or infinite values: {', '.join(bad)}")


def select_columns(
    names: Sequence[str], varies: np.ndarray, gram: np.ndarray, kind: str, rtol: float = 1e-7
) -> tuple[np.ndarray, tuple[OmittedColumn, ...], list[str]]:
    """The identified covariates: those varying within some group (``varies``) and not
    collinear after removing the group means (``gram``: the cross-products of the
    within-transformed varying columns, possibly summed over parts of the data). Returns
    the kept columns, the omitted ones and Stata's notes; an error when none is left."""
    candidates = np.flatnonzero(varies)
    dropped = find_collinear_gram(gram, rtol=rtol) if candidates.size else []
    collinear = candidates[dropped] if dropped else np.zeros(0, dtype=np.int64)
    columns = np.setdiff1d(candidates, collinear).astype(np.int64)
    constant = [
        OmittedColumn(int(j), names[int(j)], NO_WITHIN_VARIANCE) for j in np.flatnonzero(~varies)
    ]
    coll = [OmittedColumn(int(j), names[int(j)], COLLINEARITY) for j in collinear]
    if kind == "logit":
        # clogit: groups, then covariates constant within groups; collinearity after
        notes = [f"note: {c.name} omitted because of no within-group variance." for c in constant]
        notes += [f"note: {c.name} omitted because of collinearity." for c in coll]
    else:
        # xtpoisson, fe: _rmcoll runs before the check of within-group variation
        notes = [f"note: {c.name} omitted because of collinearity." for c in coll]
        notes += [f"note: {c.name} dropped because it is constant within group" for c in constant]
    if columns.size == 0:
        if not names:
            raise DataError("the fixed-effects model needs at least one covariate")
        raise DataError(
            "no covariate is left to estimate: "
            + "; ".join(f"{c.name} omitted because of {c.reason}" for c in constant + coll)
        )
    omitted = tuple(sorted(constant + coll, key=lambda c: c.index))
    return columns, omitted, notes


def prepare_within(
    y: np.ndarray,
    X: np.ndarray,
    names: Sequence[str],
    group_codes: np.ndarray,
    kind: Kind,
    *,
    outcome: str = "y",
    collinear_rtol: float = 1e-7,
) -> WithinDesign:
    """Select the informative groups and the identified covariates of a conditional model.

    Parameters
    ----------
    y : (N,) outcome: 0/1 for ``kind="logit"``, non-negative integer counts for Poisson.
    X : (N, p) covariates (no intercept: it is conditioned away with the group effects).
    names : the p column names, used in the notes.
    group_codes : (N,) integer group codes, rows sorted by group.
    kind : "logit" (``clogit`` / ``xtlogit, fe``) or "poisson" (``xtpoisson, fe``).
    outcome : the outcome variable's name, for the error messages.
    collinear_rtol : tolerance of :func:`~mixedglm.design.collinear.find_collinear` on the
        within-transformed covariates.

    Returns
    -------
    WithinDesign
        Kept rows, columns, groups and Stata's notes.

    Raises
    ------
    DataError
        The outcome has values the model cannot take, no group is informative, or no
        covariate is left.
    """
    if kind not in ("logit", "poisson"):
        raise ValueError(f"kind must be 'logit' or 'poisson', not {kind!r}")
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    X = np.asarray(X, dtype=np.float64)
    names = tuple(str(v) for v in names)
    if X.ndim != 2 or X.shape[0] != y.shape[0] or len(names) != X.shape[1]:
        raise ValueError(f"shapes do not match: y {y.shape}, X {X.shape}, {len(names)} names")
    if np.asarray(group_codes).shape[0] != y.shape[0]:
        raise ValueError("group_codes must have one entry per row")
    if y.size == 0:
        raise DataError("no observations")
    validate_outcome(y, kind, outcome)
    starts_all = group_starts(group_codes)
    keep_group, counts = informative_groups(y, starts_all, kind)
    notes = informative_notes(counts, kind, outcome)
    multiple = counts["multiple"]

    sizes_all = np.diff(starts_all)
    rows = np.repeat(keep_group, sizes_all)
    sizes = sizes_all[keep_group]
    starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    Xk = X[rows]
    check_finite(Xk, names)
    varies = within_variance(Xk, starts)
    candidates = np.flatnonzero(varies)
    D = demean(Xk[:, candidates], starts)
    columns, omitted, column_notes = select_columns(
        names, varies, D.T @ D, kind, rtol=collinear_rtol
    )
    notes += column_notes
    group_codes_kept = np.asarray(group_codes).reshape(-1)[starts_all[:-1][keep_group]]
    return WithinDesign(
        kind=kind,
        rows=rows,
        columns=columns,
        names=tuple(names[j] for j in columns),
        omitted=omitted,
        starts=starts,
        group_codes=group_codes_kept,
        n_obs=int(sizes.sum()),
        n_groups=int(sizes.size),
        group_size_min=int(sizes.min()),
        group_size_avg=float(sizes.mean()),
        group_size_max=int(sizes.max()),
        n_obs_dropped=int(y.size - sizes.sum()),
        n_groups_dropped=int(keep_group.size - sizes.size),
        multiple_positive=multiple,
        notes=tuple(notes),
    )
