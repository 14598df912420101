"""The joint Laplace engine's row kernels (:mod:`mixedglm.engines.laplace_kernels`) on the
thread pool (:mod:`mixedglm.engines.parallel`): each PIRLS iteration's rows' derivatives
(``row_terms``) and the assembly of ``H``'s blocks from them (``assemble``), the two
passes over all rows that took two thirds of a nested model's Laplace fit on one thread.

The rows' terms are independent: chunks of rows write their own rows and return their sums.
The assembly adds rows into shared arrays (the gradient, ``D``, ``B``, ``C``): one chunk per
thread, each further thread into its own zeroed copies, added at the end, where the copies
are small next to the rows (nested models; a crossed model's dense ``C`` can be larger).
"""

from __future__ import annotations

import numpy as np

from mixedglm.engines import laplace_kernels as kern
from mixedglm.engines.parallel import n_threads, row_bounds, run_chunks, use_threads


class RowChunks:
    """How the row kernels of ``n`` rows share the threads, decided once."""

    def __init__(self, n: int, share_size: int) -> None:
        """``share_size``: the entries of the assembly's arrays (a thread's copy)."""
        one = np.array([0, n], dtype=np.int64)
        threaded = use_threads(np.array([float(n)]))
        self.terms = row_bounds(n) if threaded else one
        k = n_threads() if threaded and (n_threads() - 1) * share_size <= n else 1
        self.assembly = np.linspace(0, n, k + 1).astype(np.int64) if k > 1 else one

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

    def assemble(self, args: tuple, arrays: tuple, layout: tuple) -> None:
        """:func:`~mixedglm.engines.laplace_kernels.assemble` into ``arrays`` (gradient,
        ``D``, ``B``, ``C``) by one chunk of rows per thread."""
        shares = [arrays] + [
            tuple(np.zeros_like(x) for x in arrays) for _ in range(self.assembly.size - 2)
        ]

        def run(lo: int, hi: int, slot: int) -> None:
            kern.assemble(*args, *shares[slot], layout, lo, hi, slot == 0)

        run_chunks(run, self.assembly)
        for share in shares[1:]:
            for total, part in zip(arrays, share, strict=True):
                total += part
