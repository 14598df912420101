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
from typing import Protocol

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from mixedglm.design.arrays import BLOCK_ROWS
from mixedglm.errors import DataError, OptionError

# beyond this magnitude a double's products and sums lose every digit that a fit needs
MAX_ABS_VALUE = 1e15
# the linear program is skipped above this many (distinct rows x columns)
MAX_LP_CELLS = 3_000_000
_LP_TOL = 1e-7


def _plural(n: int, word: str) -> str:
    """``1 value``, ``2 values``."""
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


class Columns(Protocol):
    """Anything that gives a Series per column name: a DataFrame, or the estimation rows."""

    def __getitem__(self, name: str, /) -> pd.Series: ...


def check_offset_options(offset: str | None, exposure: str | None) -> None:
    """Refuse an offset and an exposure together (as Stata's ``poisson``): given both, the
    log of the exposure is added to the offset, which is rarely meant (an offset that
    already holds ``log(exposure)`` then counts it twice, without any sign in the fit)."""
    if offset is not None and exposure is not None:
        raise OptionError(
            f"offset '{offset}' and exposure '{exposure}' may not be combined: give one; "
            f"for both, add log({exposure}) to the offset variable and give it as the offset"
        )


def check_values(frame: Columns, columns: Sequence[str]) -> None:
    """Refuse infinite or absurdly large values in the numeric model variables (``frame``
    is anything that gives a Series per column name: a DataFrame, or the estimation rows)."""
    for name in columns:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == bool:
            continue
        if not pd.api.types.is_numeric_dtype(col.dtype):
            continue
        values = col.to_numpy(dtype=float, na_value=np.nan)
        if values.size and -MAX_ABS_VALUE <= values.min() <= values.max() <= MAX_ABS_VALUE:
            continue  # the common case, without temporaries; NaN or a bad value: look closer
        _raise_bad(str(name), "variable", *_bad_values(values))


def check_matrix(matrix: np.ndarray, names: Sequence[str], what: str) -> None:
    """Refuse non-finite or absurdly large entries in a built design matrix, by column
    (a transformation such as ``np.log(x)`` of a zero gives ``-inf``)."""
    if matrix.size == 0:
        return
    # the common case first: the extremes of the whole matrix, no temporary (by column a
    # C-ordered matrix of 200,000 x 4 took 11.5 ms, this 0.2)
    with np.errstate(invalid="ignore"):
        if -MAX_ABS_VALUE <= matrix.min() and matrix.max() <= MAX_ABS_VALUE:
            return  # NaN fails both comparisons
    # the extremes of each column, block by block: no temporary the size of the matrix
    low = np.full(matrix.shape[1], np.inf)
    high = np.full(matrix.shape[1], -np.inf)
    for lo in range(0, matrix.shape[0], BLOCK_ROWS):
        block = matrix[lo : lo + BLOCK_ROWS]
        np.minimum(low, block.min(axis=0), out=low)  # NaN propagates into low and high
        np.maximum(high, block.max(axis=0), out=high)
    with np.errstate(invalid="ignore"):
        bad_columns = ~((low >= -MAX_ABS_VALUE) & (high <= MAX_ABS_VALUE))
    for j in np.flatnonzero(bad_columns).tolist():
        col = matrix[:, j]
        n_nan = int(np.sum(np.isnan(col)))
        if n_nan:
            raise DataError(
                f"column '{names[j]}' of the {what} has {_plural(n_nan, 'undefined value')} "
                "(NaN) although its variables are not missing: check the transformation "
                "(e.g. log or sqrt of a negative number)"
            )
        _raise_bad(names[j], f"column of the {what}", *_bad_values(col))


def outcome_extent(y: np.ndarray, trials: np.ndarray | None = None) -> np.ndarray:
    """``[min y, max y, every trial a success]``: what :func:`check_outcome_extent` needs,
    so that the partitions of a Dask frame can send it (see :func:`combine_extents`)."""
    if y.size == 0:
        return np.array([np.inf, -np.inf, 1.0])
    n = np.ones_like(y) if trials is None else trials
    return np.array([float(np.min(y)), float(np.max(y)), float(np.all(y >= n))])


def combine_extents(extents: Sequence[np.ndarray]) -> np.ndarray:
    """The extent of the rows of several partitions."""
    stacked = np.asarray(extents, dtype=float).reshape(-1, 3)
    return np.array([stacked[:, 0].min(), stacked[:, 1].max(), stacked[:, 2].min()])


def check_outcome_extent(extent: np.ndarray, name: str, family: str, has_trials: bool) -> None:
    """Refuse an outcome with nothing to model: binary always 0 or always 1 (binomial: no
    success or only successes), a count always 0, a continuous outcome without variation."""
    low, high, all_success = (float(v) for v in extent)
    if low > high:  # no rows: the sample-size checks speak
        return
    if family in ("bernoulli", "binomial") and (high <= 0 or all_success):
        if high <= 0:
            what = "0 in every observation"
        else:
            what = "a success in every trial" if has_trials else "1 in every observation"
        raise DataError(
            f"outcome '{name}' is {what} of the estimation sample: there is nothing to model"
        )
    if family in ("poisson", "nbinomial") and high == 0:
        raise DataError(
            f"outcome '{name}' is 0 in every observation of the estimation sample: there is "
            "nothing to model"
        )
    if family in ("gaussian", "gamma") and low == high:
        raise DataError(
            f"outcome '{name}' is {low:g} in every observation of the estimation sample: "
            "its variance is zero and there is nothing to model"
        )


def check_outcome_varies(
    y: np.ndarray, name: str, family: str, trials: np.ndarray | None = None
) -> None:
    """:func:`check_outcome_extent` of the rows ``y`` (``trials``: binomial trials)."""
    check_outcome_extent(outcome_extent(y, trials), name, family, trials is not None)


def outcome_notes(
    y: np.ndarray,
    X: np.ndarray,
    names: Sequence[str],
    family: str,
    response: str,
    trials: np.ndarray | None = None,
) -> list[str]:
    """Before a fit: refuse an outcome with nothing to model (:func:`check_outcome_varies`),
    then the notes of separation by a single covariate."""
    check_outcome_varies(y, response, family, trials)
    return univariate_separation_notes(y, X, names, family)


def fitted_separation_notes(
    notes: list[str],
    y: np.ndarray,
    X: np.ndarray,
    names: Sequence[str],
    family: str,
    estimates: tuple[np.ndarray, np.ndarray],
    trials: np.ndarray | None = None,
) -> list[str]:
    """After a fit: ``notes`` (the univariate ones), or, when there are none and the
    ``(estimates, SEs)`` look like separation, the linear program's note."""
    if notes or not separation_suspected(X, names, *estimates):
        return notes
    return separation_notes(y, X, names, family, trials)


def _solve(signed: np.ndarray, eq: np.ndarray, bounds: list, complete: bool = False):
    """The LP over the distinct signed rows: maximise their sum (or, with ``complete``, the
    smallest of them) subject to all >= 0 and the equality rows = 0; ``(value, d)``."""
    p = signed.shape[1]
    if complete:  # variables (d, t): maximise t subject to signed @ d >= t
        c = np.r_[np.zeros(p), -1.0]
        a_ub = np.column_stack([-signed, np.ones(signed.shape[0])])
        a_eq = np.column_stack([eq, np.zeros(eq.shape[0])]) if eq.shape[0] else None
        bounds = [*bounds, (0.0, 1.0)]
    else:
        c, a_ub, a_eq = -signed.sum(axis=0), -signed, eq if eq.shape[0] else None
    result = linprog(
        c,
        A_ub=a_ub,
        b_ub=np.zeros(a_ub.shape[0]),
        A_eq=a_eq,
        b_eq=np.zeros(a_eq.shape[0]) if a_eq is not None else None,
        bounds=bounds,
        method="highs",
    )
    if result.status != 0:
        return 0.0, None
    return -float(result.fun), result.x[:p]


def _separating_direction(
    rows: np.ndarray, signs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """A direction ``d`` with ``sign_i * rows_i @ d >= 0`` (``== 0`` where the sign is 0),
    strict for some rows, or None. Returns ``(d, strict, complete)``: ``d`` uses a minimal
    set of columns (each column whose removal leaves the data separated is removed),
    ``strict`` marks the rows it predicts perfectly, ``complete`` whether some direction
    predicts every row."""
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        return None
    scale = np.max(np.abs(rows), axis=0)
    scale[scale == 0] = 1.0
    combined = np.unique(np.column_stack([signs, rows / scale]), axis=0)
    if combined.size > MAX_LP_CELLS:
        return None
    s, A = combined[:, 0], combined[:, 1:]
    signed, eq = (s[:, None] * A)[s != 0], A[s == 0]
    if signed.shape[0] == 0:
        return None
    tol = _LP_TOL * max(1.0, signed.shape[0] ** 0.5)
    bounds = [(-1.0, 1.0)] * A.shape[1]
    value, d = _solve(signed, eq, bounds)
    if d is None or value <= tol:
        return None
    complete_value, _ = _solve(signed, eq, bounds, complete=True)
    for j in np.argsort(np.abs(d)):  # drop the columns not needed, smallest weight first
        trial = [*bounds[:j], (0.0, 0.0), *bounds[j + 1 :]]
        if abs(d[j]) <= 1e-12:  # the current direction does without it
            bounds, d = trial, np.where(np.arange(d.size) == j, 0.0, d)
            continue
        value_j, d_j = _solve(signed, eq, trial)
        if d_j is not None and value_j > tol:
            bounds, d = trial, d_j
    direction = d / scale
    fitted = signs * (rows @ direction)
    strict = fitted > _LP_TOL * max(float(np.max(np.abs(fitted))), 1e-300)
    return direction, strict, complete_value > _LP_TOL


def _culprits(d: np.ndarray, names: Sequence[str]) -> list[str]:
    return [n for n, w in zip(names, d, strict=True) if w != 0 and n != "_cons"]


def _separation(
    rows: np.ndarray, signs: np.ndarray, names: Sequence[str]
) -> tuple[list[str], np.ndarray, bool] | None:
    """The covariates that separate (named), which rows are strictly separated and whether
    the separation is complete; None when nothing separates."""
    found = _separating_direction(rows, signs)
    if found is None:
        return None
    d, strict, complete = found
    culprits = _culprits(d, names)
    return (culprits, strict, complete) if culprits else None


def _note(culprits: list[str], n_strict: int, complete: bool, rows_word: tuple[str, str]) -> str:
    who = " and ".join([", ".join(culprits[:-1]), culprits[-1]] if len(culprits) > 1 else culprits)
    kind = "complete" if complete else "quasi-complete"
    one = len(culprits) == 1
    return (
        f"note: {who} predict{'s' if one else ''} the outcome perfectly for {n_strict} "
        f"{rows_word[0] if n_strict == 1 else rows_word[1]} ({kind} separation): "
        f"{'its coefficient has' if one else 'their coefficients have'} no finite estimate "
        "and the estimates and SEs shown are not meaningful; drop "
        f"{'it' if one else 'one of them'} or the observations predicted"
    )


def univariate_separation_notes(
    y: np.ndarray, X: np.ndarray, names: Sequence[str], family: str
) -> list[str]:
    """Separation by a single covariate of a 0/1 outcome (every value of ``x`` on one side of
    a threshold has the same outcome): O(N p), run before every binary fit."""
    if family not in ("bernoulli", "binomial") or not np.all((y == 0) | (y == 1)):
        return []
    notes = []
    for j, name in enumerate(names):
        col = X[:, j]
        if name == "_cons" or np.ptp(col) == 0:
            continue
        ones, zeros = col[y == 1], col[y == 0]
        for low, high in ((zeros, ones), (ones, zeros)):
            if low.max() <= high.min():
                cut = low.max() if low.max() < high.min() else None
                complete = cut is not None
                n_pred = col.size if complete else int(np.sum(col != low.max()))
                notes.append(_note([name], n_pred, complete, ("observation", "observations")))
                break
    return notes


def separation_suspected(
    X: np.ndarray, names: Sequence[str], beta: np.ndarray, se: np.ndarray
) -> bool:
    """Estimates that look like separation: a covariate moving the linear predictor by more
    than 15 somewhere, or an SE that does (the linear program then checks)."""
    reach = np.maximum(X.max(axis=0), -X.min(axis=0)) if X.shape[0] else np.zeros(X.shape[1])
    keep = np.array([n != "_cons" for n in names])
    with np.errstate(invalid="ignore", over="ignore"):
        big = (reach * np.abs(beta) > 15) | (reach * se > 50) | ~np.isfinite(se)
    return bool(np.any(big & keep))


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
    found = _separation(X, signs, names)
    if found is None:
        return []
    culprits, strict, complete = found
    n_pred = X.shape[0] if complete else int(strict.sum())
    return [_note(culprits, n_pred, complete, ("observation", "observations"))]


def conditional_pairs(
    y: np.ndarray, X: np.ndarray, starts: np.ndarray, kind: str, max_pairs: int = 500_000
) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows of the separation check of a conditional model (see
    :func:`conditional_separation_notes`): the differences of covariates between events
    and non-events of each group, with their signs; ``None`` beyond ``max_pairs``."""
    diffs: list[np.ndarray] = [np.zeros((0, X.shape[1]))]
    signs: list[np.ndarray] = [np.zeros(0)]
    n_pairs = 0
    for g in range(starts.shape[0] - 1):
        lo, hi = int(starts[g]), int(starts[g + 1])
        yg, Xg = y[lo:hi], X[lo:hi]
        pos, zero = Xg[yg > 0], Xg[yg <= 0]
        n_pairs += pos.shape[0] * zero.shape[0]
        if n_pairs > max_pairs:
            return None
        if pos.shape[0] and zero.shape[0]:
            diffs.append((pos[:, None, :] - zero[None, :, :]).reshape(-1, X.shape[1]))
            signs.append(np.ones(pos.shape[0] * zero.shape[0]))
        if kind == "poisson" and pos.shape[0] > 1:
            diffs.append(pos[1:] - pos[:-1])
            signs.append(np.zeros(pos.shape[0] - 1))
    return np.vstack(diffs), np.concatenate(signs)


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
    pairs = conditional_pairs(y, X, starts, kind, max_pairs)
    return [] if pairs is None else pair_separation_notes(*pairs, names)


def pair_separation_notes(rows: np.ndarray, sgn: np.ndarray, names: Sequence[str]) -> list[str]:
    """The note of :func:`conditional_separation_notes` from the pairs' rows and signs
    (those of several parts of the data stacked)."""
    if not rows.shape[0]:
        return []
    found = _separation(rows, sgn, names)
    if found is None:
        return []
    culprits, strict, complete = found
    n_pred = int((sgn != 0).sum()) if complete else int(strict[sgn != 0].sum())
    return [_note(culprits, n_pred, complete, ("pair of observations", "pairs of observations"))]
