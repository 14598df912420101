"""How the compiled kernels share work between threads.

Clusters are split into contiguous chunks of about equal cost, several per thread; the
threaded kernels hand chunks out one at a time (``numba.parallel_chunksize(1)``), so a thread
slowed by other work on the machine, or a chunk holding one huge cluster, does not leave the
others idle. Below a small amount of work one thread is faster than waking the others.
"""

from __future__ import annotations

import numba
import numpy as np

PARALLEL_MIN_COST = 20_000.0


def use_threads(cost: np.ndarray) -> bool:
    """Whether the total ``cost`` (per cluster) is worth more than one thread."""
    return numba.get_num_threads() > 1 and float(np.sum(cost)) >= PARALLEL_MIN_COST


def cost_chunks(cost: np.ndarray, per_thread: int = 4) -> np.ndarray:
    """Boundaries ``(n_chunks + 1,)`` of contiguous chunks of clusters of about equal cost."""
    n = cost.size
    n_chunks = int(min(n, per_thread * numba.get_num_threads()))
    if n_chunks <= 1:
        return np.array([0, n], dtype=np.int64)
    cum = np.cumsum(cost, dtype=np.float64)
    targets = cum[-1] * np.arange(1, n_chunks) / n_chunks
    inner = np.searchsorted(cum, targets, side="left") + 1
    bounds = np.unique(np.concatenate(([0], np.minimum(inner, n), [n])))
    return bounds.astype(np.int64)
