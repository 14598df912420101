"""Ordinal outcomes: coding the categories, the cut-point parameterisation, probabilities.

A cumulative-link model with categories 1..K (coded 0..K-1) and cut points
``c_1 < ... < c_{K-1}`` has ``P(y <= k | eta) = F(c_k - eta)``, Stata's ``meologit`` /
``meoprobit`` convention (``ordinal::clmm``'s too), with no constant in ``eta``.

The cut points are estimated as ``aux = (c_1, log(c_2 - c_1), ..., log(c_{K-1} - c_{K-2}))``:
every real vector is a valid, ordered set of cut points, so Newton steps and the grid search
of the start values never leave the parameter space (with raw cut points a step that crosses
two of them makes a category's probability negative and the log-likelihood -inf, which the
per-cluster mode finding of the quadrature cannot recover from). The cut points and their
standard errors are reported on Stata's scale by the delta method, which at the maximum is
exactly the inverse information of the raw cut points (the parameterisation is one-to-one
and smooth).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from mixedglm.errors import DataError


def ordinal_outcome(column: pd.Series, name: str) -> tuple[np.ndarray, tuple, list[str]]:
    """Code an ordinal outcome 0..K-1.

    A categorical column keeps its categories' order (Stata value labels, pandas ordered
    categories) and every category must be observed; a numeric column's categories are its
    distinct values in increasing order. Returns the codes (floats), the categories and
    notes.
    """
    notes: list[str] = []
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = list(column.cat.categories)
        codes = column.cat.codes.to_numpy()
        counts = np.bincount(codes, minlength=len(categories))
        empty = [str(categories[j]) for j in np.flatnonzero(counts == 0)]
        if empty:
            raise DataError(
                f"ordinal outcome '{name}' has categor{'ies' if len(empty) > 1 else 'y'} "
                f"{', '.join(repr(e) for e in empty)} that no observation in the estimation "
                "sample chose: its cut point cannot be estimated; drop the unused categories "
                "(e.g. .cat.remove_unused_categories()) or merge them with a neighbour"
            )
        y = codes.astype(float)
    else:
        if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            raise DataError(
                f"ordinal outcome '{name}' is text: make it an ordered categorical "
                "(pd.Categorical(..., ordered=True)) or numeric so that its order is known"
            )
        values = column.to_numpy(dtype=float)
        categories_f, codes = np.unique(values, return_inverse=True)
        categories = [_plain(v) for v in categories_f]
        y = codes.astype(float)
        if np.all(categories_f == np.round(categories_f)) and categories_f.size > 1:
            full = np.arange(categories_f[0], categories_f[-1] + 1)
            missing = [f"{v:g}" for v in full if v not in set(categories_f)]
            if missing and len(missing) <= 10:
                notes.append(
                    f"note: {name} takes no value {', '.join(missing)}: the categories are the "
                    f"{categories_f.size} values observed"
                )
    if len(categories) < 2:
        only = f" ({categories[0]!r})" if categories else ""
        raise DataError(
            f"ordinal outcome '{name}' has a single category{only} in the estimation sample: "
            "an ordinal model needs at least two"
        )
    return np.ascontiguousarray(y), tuple(categories), notes


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def cutpoints(aux: np.ndarray) -> np.ndarray:
    """Cut points ``c_1 < ... < c_J`` from the estimation parameters."""
    aux = np.asarray(aux, dtype=float)
    return aux[0] + np.concatenate([[0.0], np.cumsum(np.exp(aux[1:]))])


def cutpoint_jacobian(aux: np.ndarray) -> np.ndarray:
    """``d c_j / d aux_m`` (J x J): 1 for m = 0, exp(aux_m) for 1 <= m <= j."""
    aux = np.asarray(aux, dtype=float)
    n = aux.shape[0]
    jac = np.tril(np.tile(np.exp(aux), (n, 1)))
    jac[:, 0] = 1.0
    return jac


def aux_from_cutpoints(cuts: np.ndarray) -> np.ndarray:
    """The inverse of :func:`cutpoints` (cut points must increase)."""
    cuts = np.asarray(cuts, dtype=float)
    return np.concatenate([cuts[:1], np.log(np.diff(cuts))])


def _cdf(link: str, x: np.ndarray) -> np.ndarray:
    if link == "logit":
        return special.expit(x)
    if link == "probit":
        return special.ndtr(x)
    return -np.expm1(-np.exp(x))


def _quantile(link: str, p: np.ndarray) -> np.ndarray:
    if link == "logit":
        return special.logit(p)
    if link == "probit":
        return special.ndtri(p)
    return np.log(-np.log1p(-p))


def cut_start(link: str, y: np.ndarray, n_categories: int) -> np.ndarray:
    """Start values: the cut points that reproduce the sample's cumulative proportions
    with ``eta = 0``."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_categories).astype(float)
    cum = np.cumsum(counts)[:-1] / counts.sum()
    cuts = _quantile(link, np.clip(cum, 1e-6, 1 - 1e-6))
    cuts = np.maximum.accumulate(cuts + 1e-3 * np.arange(cuts.size))
    return aux_from_cutpoints(cuts)


def category_probabilities(link: str, eta: np.ndarray, aux: np.ndarray) -> np.ndarray:
    """``P(y = k | eta)`` for every category: ``(len(eta), K)`` (rows sum to one)."""
    cuts = cutpoints(aux)
    eta = np.asarray(eta, dtype=float)
    cum = _cdf(link, cuts[None, :] - eta.reshape(-1, 1))
    ones = np.ones((cum.shape[0], 1))
    return np.diff(np.hstack([np.zeros_like(ones), cum, ones]), axis=1).reshape(
        *eta.shape, cuts.size + 1
    )
