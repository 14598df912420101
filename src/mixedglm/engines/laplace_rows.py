"""The joint Laplace engine's row kernels (:mod:`mixedglm.engines.laplace_kernels`) on the
thread pool (:mod:`mixedglm.engines.parallel`): each PIRLS iteration's rows' derivatives
(``row_terms``) and the assembly of ``H``'s blocks from them (``assemble``), the two
passes over all rows that took two thirds of a nested model's Laplace fit on one thread;
and the gradient's selected inverse (by chunks of block levels, each writing its own
blocks), rows' leverages (by chunks of rows) and rows' terms (by one chunk of rows per
thread, each further thread into its own copy of the per-cluster score).

The rows' terms are independent: chunks of rows write their own rows and return their sums.
The assembly goes by chunks of block levels, one per thread: each writes its levels'
parts of the gradient, ``D`` and ``B``, and adds its rows into its own zeroed copies of the
rest's part of the gradient and of ``C``, added at the end, where the copies are small next
to the rows (nested models; a crossed model's dense ``C`` of a few hundred levels).
"""

from __future__ import annotations

import numpy as np

from mixedglm.engines import laplace_kernels as kern
from mixedglm.engines.parallel import (
    cost_chunks,
    n_threads,
    row_bounds,
    run_chunks,
    run_summed,
    use_threads,
)


class RowChunks:
    """How the row kernels of ``n`` rows, and the per-level kernels, share the threads,
    decided once."""

    def __init__(
        self, rptr: np.ndarray, share_size: int, level_cost: np.ndarray, score_size: int
    ) -> None:
        """``rptr``: the block levels' rows (``rptr[g] .. rptr[g + 1] - 1`` in the order
        by level); ``share_size``: the entries of the assembly's arrays a thread adds to
        its own copy of; ``level_cost``: each block level's work in the selected inverse;
        ``score_size``: the entries of the gradient's per-cluster array (a copy each)."""
        n, g1 = int(rptr[-1]), rptr.size - 1
        one = np.array([0, n], dtype=np.int64)
        all_levels = np.array([0, g1], dtype=np.int64)
        threaded = use_threads(np.array([float(n)]))
        self.terms = row_bounds(n) if threaded else one

        def copies_pay(size: int) -> bool:  # a copy per further thread, small next to rows
            return threaded and n_threads() > 1 and (n_threads() - 1) * size <= n

        # the assembly by chunks of block levels, one per thread (each a copy of C)
        rows = np.diff(rptr).astype(np.float64) + 1.0
        self.assembly = cost_chunks(rows, per_thread=1) if copies_pay(share_size) else all_levels
        k = n_threads()
        self.score = np.linspace(0, n, k + 1).astype(np.int64) if copies_pay(score_size) else one
        self.levels = cost_chunks(level_cost) if use_threads(level_cost) else all_levels

    def row_terms(
        self, xb: np.ndarray, pos: np.ndarray, a: np.ndarray, u: np.ndarray, y: np.ndarray,
        trials: np.ndarray, aux: np.ndarray, token: object, out: tuple,
    ) -> float:  # fmt: skip
        """:func:`~mixedglm.engines.laplace_kernels.row_terms` by chunks of rows."""
        parts = np.zeros(self.terms.size - 1)

        def run(lo: int, hi: int, slot: int) -> None:
            r = slice(lo, hi)
            parts[slot] = kern.row_terms(
                xb[r], pos[r], a[r], u, y[r], trials[r], aux, token, *(o[r] for o in out)
            )

        run_chunks(run, self.terms)
        return float(parts.sum())

    def assemble(self, args: tuple, grad: np.ndarray, arrays: tuple, layout: tuple) -> None:
        """:func:`~mixedglm.engines.laplace_kernels.assemble` into ``grad`` and ``arrays``
        (``D``, ``B``, ``C``) by one chunk of block levels per thread: each writes its
        levels' parts of ``grad``, ``D``, ``B``, and adds to its own copy of the rest's
        part of ``grad`` and of ``C`` (the first thread: the arrays themselves)."""
        D, B, C = arrays
        grest = grad[D.shape[0] * D.shape[1] :]

        def run(lo: int, hi: int, slot: int, share: tuple[np.ndarray, ...]) -> None:
            kern.assemble(*args, grad, share[0], D, B, share[1], layout, lo, hi, slot == 0)

        run_summed(run, self.assembly, (grest, C))

    def selected_inverse(
        self, q1: int, kptr: np.ndarray, kpos: np.ndarray, Dinv: np.ndarray, F: np.ndarray,
        Sinv: np.ndarray, layout: tuple,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """:func:`~mixedglm.engines.laplace_kernels.selected_inverse` (``P``, ``H11``) by
        chunks of block levels."""
        P = np.empty(F.shape[0])
        H11 = np.empty_like(Dinv)

        def run(lo: int, hi: int, slot: int) -> None:
            kern.selected_inverse(q1, kptr, kpos, Dinv, F, Sinv, layout, P, H11, lo, hi)

        run_chunks(run, self.levels)
        return P, H11

    def row_leverages(self, args: tuple, v: np.ndarray) -> np.ndarray:
        """:func:`~mixedglm.engines.laplace_kernels.row_leverages` by chunks of rows:
        ``v`` filled, ``h`` returned (``args``: its arguments before ``v``)."""
        h = np.empty(v.shape[0])

        def run(lo: int, hi: int, slot: int) -> None:
            kern.row_leverages(*args, v, h, lo, hi)

        run_chunks(run, self.terms)
        return h

    def gradient_rows(self, args: tuple, out: np.ndarray) -> None:
        """:func:`~mixedglm.engines.laplace_kernels.gradient_rows` added into ``out`` by
        one chunk of rows per thread, each further thread into its own zeroed copy
        (``args``: its arguments before ``out``)."""

        def run(lo: int, hi: int, slot: int, share: tuple[np.ndarray, ...]) -> None:
            kern.gradient_rows(*args, share[0], lo, hi)

        run_summed(run, self.score, (out,))
