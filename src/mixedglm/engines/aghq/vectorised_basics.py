"""Building blocks of the vectorised one-factor quadrature (:mod:`.vectorised`): sets of
clusters with their rows, sums per cluster in the compiled loops' order of additions, the
family's weighted derivatives at many linear predictors (threaded over the observations),
and q = 1 algebra.

Sums per cluster add the rows in row order, starting from the value the compiled loop starts
from (``np.bincount`` adds in array order), so that the results agree with the compiled
kernels to the last bit wherever the same operations are done.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np

from mixedglm.engines.aghq.cluster import RULE_MEANVAR, Data, Flags, Grid
from mixedglm.engines.parallel import row_bounds, run_chunks
from mixedglm.families.rows import aux_derivs_rows, eta_derivs_rows, fisher_rows


def _sums_onto(
    start_bins: np.ndarray, values: np.ndarray, n_bins: int, initial: np.ndarray | float
) -> np.ndarray:
    """Sums of ``values`` by bins, adding in array order onto ``initial``: ``start_bins`` =
    ``[0 .. n_bins - 1, the values' bins]`` (see :func:`_start_bins`)."""
    start = np.broadcast_to(np.asarray(initial, dtype=float), (n_bins,))
    return np.bincount(start_bins, weights=np.concatenate([start, values]), minlength=n_bins)


class Clusters(NamedTuple):
    """Some clusters (``ids``, in order) and their rows: ``rows`` the row numbers, ``local``
    each row's position in ``ids``, and the rows' ``xb``, ``w`` (= W[:, 0]), ``y``, ``ntr``
    and weights ``wts`` (None: all 1); ``start_bins`` = ``[0 .. n - 1, local]``."""

    ids: np.ndarray
    rows: np.ndarray
    local: np.ndarray
    xb: np.ndarray
    w: np.ndarray
    y: np.ndarray
    ntr: np.ndarray
    wts: np.ndarray | None
    start_bins: np.ndarray

    @property
    def n(self) -> int:
        return self.ids.shape[0]

    def sums(self, values: np.ndarray, initial: np.ndarray | float | None = None) -> np.ndarray:
        """``(n,)`` per-cluster sums of row values ``(M,)``."""
        if initial is None:
            return np.bincount(self.local, weights=values, minlength=self.n)
        return _sums_onto(self.start_bins, values, self.n, initial)

    def row_major_bins(self, n_cols: int) -> np.ndarray:
        """The bins of :meth:`row_major_sums` for ``n_cols`` entries a row."""
        return _start_bins(np.repeat(self.local, n_cols), self.n)

    def row_major_sums(
        self, values: np.ndarray, initial: np.ndarray | float = 0.0, bins: np.ndarray | None = None
    ) -> np.ndarray:
        """``(n,)`` per-cluster sums of ``values`` ``(M, L)`` over rows and, within a row,
        over its ``L`` entries (the order of a loop over nodes inside the loop over rows);
        ``bins`` from :meth:`row_major_bins` (built here if None)."""
        if bins is None:
            bins = self.row_major_bins(values.shape[1])
        return _sums_onto(bins, values.ravel(), self.n, initial)

    def column_sums(self, values: np.ndarray) -> np.ndarray:
        """``(n, L)`` per-cluster sums of each column of ``values`` ``(M, L)``."""
        n_cols = values.shape[1]
        bins = (self.local[:, None] * n_cols + np.arange(n_cols)).ravel()
        total = np.bincount(bins, weights=values.ravel(), minlength=self.n * n_cols)
        return total.reshape(self.n, n_cols)

    def block_sums(self, values: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """``(B, n)`` per-cluster sums of each block of ``values`` ``(B, M)``, each onto
        ``initial`` ``(B, n)``."""
        return np.stack([self.sums(values[b], initial[b]) for b in range(values.shape[0])])

    def subset(self, keep: np.ndarray) -> Clusters:
        """The clusters where ``keep`` ``(n,)`` is True, with their rows."""
        row_keep = keep[self.local]
        position = np.cumsum(keep) - 1
        wts = None if self.wts is None else self.wts[row_keep]
        local = position[self.local[row_keep]]
        return Clusters(
            self.ids[keep], self.rows[row_keep], local, self.xb[row_keep], self.w[row_keep],
            self.y[row_keep], self.ntr[row_keep], wts, _start_bins(local, int(keep.sum())),
        )  # fmt: skip

    def eta(self, u: np.ndarray) -> np.ndarray:
        """``xb + w u`` at every row, ``u`` ``(n,)`` one value per cluster."""
        return self.xb + self.w * u[self.local]


def all_clusters(d: Data) -> Clusters:
    """Every cluster of ``d`` with every row."""
    n_clusters = d.starts.shape[0] - 1
    sizes = np.diff(d.starts)
    local = np.repeat(np.arange(n_clusters), sizes)
    wts = np.ascontiguousarray(d.wts, dtype=float) if d.wts.shape[0] > 0 else None
    return Clusters(
        np.arange(n_clusters), np.arange(d.xb.shape[0]), local,
        np.ascontiguousarray(d.xb, dtype=float), np.ascontiguousarray(d.W[:, 0], dtype=float),
        np.ascontiguousarray(d.y, dtype=float), np.ascontiguousarray(d.ntr, dtype=float), wts,
        _start_bins(local, n_clusters),
    )  # fmt: skip


def _start_bins(bins: np.ndarray, n_bins: int) -> np.ndarray:
    """The bins of sums that start from a given value (:func:`_sums_onto`): every bin once
    for the start values, then ``bins``."""
    return np.concatenate([np.arange(n_bins), bins])


# --------------------------------------------------------------------------------------------
# the family, weighted by the observation weights (as cluster.obs_* do)


def _by_rows(fill: Callable[..., None], out: tuple[np.ndarray, ...], n_rows: int) -> None:
    """``fill(*out, lo, hi)`` over chunks of the observations, on the package's threads."""
    run_chunks(lambda lo, hi, _: fill(*out, lo, hi), row_bounds(n_rows))


def family_derivs(fam, c: Clusters, eta: np.ndarray, aux: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted ``l, dl/deta, d2l/deta2, d3l/deta3`` at ``eta`` ``(B, M)``."""
    out = tuple(np.empty(eta.shape) for _ in range(4))
    _by_rows(partial(eta_derivs_rows, fam, c.y, c.ntr, eta, aux), out, eta.shape[1])
    if c.wts is None:
        return out
    return tuple(c.wts * v for v in out)


def family_aux_derivs(fam, c: Clusters, eta: np.ndarray, aux: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted ``l_a``, ``l_ea``, ``l_eea`` ``(B, M, n_aux)`` and ``l_aa``
    ``(B, M, n_aux, n_aux)`` at ``eta`` ``(B, M)``."""
    n_aux = aux.shape[0]
    out = (*(np.zeros((*eta.shape, n_aux)) for _ in range(3)), np.zeros((*eta.shape, n_aux, n_aux)))
    _by_rows(partial(aux_derivs_rows, fam, c.y, c.ntr, eta, aux), out, eta.shape[1])
    l_a, l_ea, l_eea, l_aa = out
    if c.wts is None:
        return l_a, l_ea, l_eea, l_aa
    cw = c.wts[:, None]
    return l_a * cw, l_ea * cw, l_eea * cw, l_aa * cw[:, :, None]


def family_fisher(fam, c: Clusters, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted expected-information weight and its eta-derivative at ``eta`` ``(B, M)``."""
    fw, dfw = np.empty(eta.shape), np.empty(eta.shape)
    _by_rows(partial(fisher_rows, fam, c.ntr, eta), (fw, dfw), eta.shape[1])
    if c.wts is None:
        return fw, dfw
    return c.wts * fw, c.wts * dfw


# --------------------------------------------------------------------------------------------
# q = 1 algebra, as linalg's loops compute it


def spd_inverse_1(a: np.ndarray) -> np.ndarray:
    """``1 / a`` through the Cholesky factor as ``spd_inverse_into`` (``(1/sqrt(a))^2``);
    NaN where ``a`` is not positive (the compiled kernel leaves its output untouched)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        inv_root = 1.0 / np.sqrt(np.where(a > 0.0, a, np.nan))
    return inv_root * inv_root


def chol_1(a: np.ndarray) -> np.ndarray:
    """``sqrt(a)``, 0 where ``a`` is not positive (``chol_into`` zeroes its output)."""
    with np.errstate(invalid="ignore"):
        return np.where(a > 0.0, np.sqrt(np.where(a > 0.0, a, 1.0)), 0.0)


def is_meanvar(fl: Flags, g: Grid) -> bool:
    """Whether the grids are mean-variance grids (as chunk's ``meanvar``: not Laplace)."""
    return fl.rule == RULE_MEANVAR and g.nodes.shape[0] > 1


def running_max(acc: np.ndarray, value: np.ndarray) -> np.ndarray:
    """numba's ``max(acc, value)``: ``value`` if it is larger, else ``acc`` (NaN skipped)."""
    return np.where(value > acc, value, acc)
