"""Checks of the data a model is about to be fitted on.

:func:`check_values` refuses infinite and absurdly large values, naming the column and the
count (a value of 1e300 makes every number of the fit meaningless without any error).
:func:`check_matrix` does the same for the columns a formula builds (``np.log(x)`` of a zero).
:func:`separation_notes` and :func:`conditional_separation_notes` detect separation: a
combination of covariates that predicts the outcome perfectly, so that the likelihood has no
maximum and the optimiser stops at an arbitrary large coefficient with a huge SE. They find it
with a linear program (Konis 2007), as R's ``detectseparation``, and return a note naming
the variables; the model itself is not changed (see ``docs/errors.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from mixedglm.errors import DataError

# beyond this magnitude a double's products and sums lose every digit that a fit needs
MAX_ABS_VALUE = 1e15
# the linear program is skipped above this many (distinct rows x columns)
MAX_LP_CELLS = 3_000_000
_LP_TOL = 1e-7


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _bad_values(values: np.ndarray) -> tuple[int, int, float]:
    """Counts of infinite and too-large finite values, and the largest finite magnitude."""
    finite = np.isfinite(values)
    n_inf = int(np.sum(np.isinf(values)))
    mags = np.abs(values[finite])
    n_big = int(np.sum(mags > MAX_ABS_VALUE))
    return n_inf, n_big, float(mags.max()) if mags.size else 0.0


def _raise_bad(name: str, what: str, n_inf: int, n_big: int, largest: float) -> None:
    if n_inf:
        raise DataError(
            f"{what} '{name}' has {_plural(n_inf, 'infinite value')} (inf or -inf): recode "
            "them as missing or drop those rows"
        )
    if n_big:
        raise DataError(
            f"{what} '{name}' has {_plural(n_big, 'value')} larger than {MAX_ABS_VALUE:.0e} in "
            f"magnitude (largest {largest:.3g}): no fit is accurate on that scale; rescale "
            f"'{name}' (e.g. divide it by a power of 10) or recode those values"
        )


def check_values(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    """Refuse infinite or absurdly large values in the numeric model variables."""
    for name in columns:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == bool:
            continue
        if not pd.api.types.is_numeric_dtype(col.dtype):
            continue
        values = col.to_numpy(dtype=float, na_value=np.nan)
        _raise_bad(str(name), "variable", *_bad_values(values))


def check_matrix(matrix: np.ndarray, names: Sequence[str], what: str) -> None:
    """Refuse non-finite or absurdly large entries in a built design matrix, by column
    (a transformation such as ``np.log(x)`` of a zero gives ``-inf``)."""
    if matrix.size == 0:
        return
    bad_columns = ~np.all(np.isfinite(matrix) & (np.abs(matrix) <= MAX_ABS_VALUE), axis=0)
    for j in np.flatnonzero(bad_columns):
        col = matrix[:, j]
        n_nan = int(np.sum(np.isnan(col)))
        if n_nan:
            raise DataError(
                f"column '{names[j]}' of the {what} has {_plural(n_nan, 'undefined value')} "
                "(NaN) although its variables are not missing: check the transformation "
                "(e.g. log or sqrt of a negative number)"
            )
        _raise_bad(names[j], f"column of the {what}", *_bad_values(col))


def check_outcome_varies(
    y: np.ndarray, name: str, family: str, trials: np.ndarray | None = None
) -> None:
    """A binary outcome that is always 0 or always 1 (a count always 0) has no model."""
    if y.size == 0:
        return
    if family in ("bernoulli", "binomial"):
        n = np.ones_like(y) if trials is None else trials
        if np.all(y >= n) or np.all(y <= 0):
            value = "1" if trials is None and np.all(y >= n) else ("0" if np.all(y <= 0) else "n")
            what = "a success in every trial" if value == "n" else f"{value} in every observation"
            raise DataError(
                f"outcome '{name}' is {what} of the estimation sample: there is nothing to model"
            )
    elif family in ("poisson", "nbinomial") and np.all(y == 0):
        raise DataError(
            f"outcome '{name}' is 0 in every observation of the estimation sample: there is "
            "nothing to model"
        )


def _separating_direction(
    rows: np.ndarray, signs: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """A direction ``d`` with ``sign_i * rows_i @ d >= 0`` (``== 0`` where the sign is 0),
    strict for some rows, or None. Returns ``(d, strict)``: ``strict`` marks the rows
    the direction predicts perfectly."""
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        return None
    scale = np.max(np.abs(rows), axis=0)
    scale[scale == 0] = 1.0
    A = rows / scale
    combined = np.unique(np.column_stack([signs, A]), axis=0)
    if combined.size > MAX_LP_CELLS:
        return None
    s, A_u = combined[:, 0], combined[:, 1:]
    signed = s[:, None] * A_u
    ineq, eq = signed[s != 0], A_u[s == 0]
    if ineq.shape[0] == 0:
        return None
    result = linprog(
        -ineq.sum(axis=0),
        A_ub=-ineq,
        b_ub=np.zeros(ineq.shape[0]),
        A_eq=eq if eq.shape[0] else None,
        b_eq=np.zeros(eq.shape[0]) if eq.shape[0] else None,
        bounds=[(-1.0, 1.0)] * A.shape[1],
        method="highs",
    )
    if result.status != 0 or -result.fun <= _LP_TOL * max(1, ineq.shape[0]) ** 0.5:
        return None
    d = result.x / scale
    strict = (signs * (rows @ d)) > _LP_TOL * np.max(np.abs(rows @ d))
    return d, strict


def _culprits(d: np.ndarray, names: Sequence[str], scale: np.ndarray) -> list[str]:
    weight = np.abs(d) * scale
    keep = weight > 1e-6 * weight.max()
    return [n for n, k in zip(names, keep, strict=True) if k and n != "_cons"]


def _note(culprits: list[str], n_strict: int, n_rows: int, rows_word: str) -> str:
    who = " and ".join([", ".join(culprits[:-1]), culprits[-1]] if len(culprits) > 1 else culprits)
    kind = "complete" if n_strict == n_rows else "quasi-complete"
    return (
        f"note: {who} predict{'s' if len(culprits) == 1 else ''} the outcome perfectly for "
        f"{_plural(n_strict, rows_word)} ({kind} separation): "
        f"{'its coefficient has' if len(culprits) == 1 else 'their coefficients have'} no "
        "finite estimate and the estimates and SEs shown are not meaningful; drop "
        f"{'it' if len(culprits) == 1 else 'one of them'} or the observations predicted"
    )


def separation_notes(
    y: np.ndarray,
    X: np.ndarray,
    names: Sequence[str],
    family: str,
    trials: np.ndarray | None = None,
) -> list[str]:
    """A note naming the covariates that separate the outcome, or no note.

    Binary and binomial outcomes: a direction ``d`` with ``x'd >= 0`` wherever all trials
    succeed, ``<= 0`` where all fail and ``= 0`` where both occur. Counts (Poisson, negative
    binomial): ``x'd <= 0`` where the count is 0 and ``= 0`` where it is positive.
    """
    if family in ("bernoulli", "binomial"):
        n = np.ones_like(y) if trials is None else trials
        signs = np.where(y >= n, 1.0, np.where(y <= 0, -1.0, 0.0))
        signs = signs[n > 0]
        X = X[n > 0]
    elif family in ("poisson", "nbinomial"):
        signs = np.where(y > 0, 0.0, -1.0)
    else:
        return []
    found = _separating_direction(X, signs)
    if found is None:
        return []
    d, strict = found
    culprits = _culprits(d, names, np.max(np.abs(X), axis=0))
    if not culprits:
        return []
    return [_note(culprits, int(strict.sum()), X.shape[0], "observation")]


def conditional_separation_notes(
    y: np.ndarray,
    X: np.ndarray,
    starts: np.ndarray,
    names: Sequence[str],
    kind: str,
    max_pairs: int = 500_000,
) -> list[str]:
    """Separation in a conditional (fixed-effects) logit or Poisson model, whose group
    effects are conditioned away: within every group, ``x'd`` of each event (positive
    count) at least that of each non-event, and equal among positive counts (Poisson)."""
    diffs: list[np.ndarray] = []
    signs: list[np.ndarray] = []
    n_pairs = 0
    for g in range(starts.shape[0] - 1):
        lo, hi = int(starts[g]), int(starts[g + 1])
        yg, Xg = y[lo:hi], X[lo:hi]
        pos, zero = Xg[yg > 0], Xg[yg <= 0]
        n_pairs += pos.shape[0] * zero.shape[0]
        if n_pairs > max_pairs:
            return []
        if pos.shape[0] and zero.shape[0]:
            diffs.append((pos[:, None, :] - zero[None, :, :]).reshape(-1, X.shape[1]))
            signs.append(np.ones(pos.shape[0] * zero.shape[0]))
        if kind == "poisson" and pos.shape[0] > 1:
            diffs.append(pos[1:] - pos[:-1])
            signs.append(np.zeros(pos.shape[0] - 1))
    if not diffs:
        return []
    rows, sgn = np.vstack(diffs), np.concatenate(signs)
    found = _separating_direction(rows, sgn)
    if found is None:
        return []
    d, strict = found
    culprits = _culprits(d, names, np.max(np.abs(rows), axis=0))
    if not culprits:
        return []
    n_pred = int(strict[sgn != 0].sum())
    return [_note(culprits, n_pred, int((sgn != 0).sum()), "pair of observations")]
