"""How the compiled kernels share work between threads.

Clusters are split into contiguous chunks of about equal cost, several per thread; the
calling thread and the pool's Python threads take the chunks one at a time from a shared
counter and run a kernel compiled with ``nogil=True`` on each,
so a thread slowed by other work on the machine, or a chunk holding one huge cluster, does
not leave the others idle. The same compiled kernel serves one thread and many (numba's
``parallel=True`` would compile each kernel a second time, for its thread pool, and take
several times longer to compile). Below a small amount of work one thread is faster than
waking the others.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

PARALLEL_MIN_COST = 20_000.0
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0


def n_threads() -> int:
    """Threads to use: numba's setting (``NUMBA_NUM_THREADS``), at most the CPUs we have."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(numba.get_num_threads(), available))


def use_threads(cost: np.ndarray) -> bool:
    """Whether the total ``cost`` (per cluster) is worth more than one thread."""
    return n_threads() > 1 and float(np.sum(cost)) >= PARALLEL_MIN_COST


def cost_chunks(cost: np.ndarray, per_thread: int = 4) -> np.ndarray:
    """Boundaries ``(n_chunks + 1,)`` of contiguous chunks of clusters of about equal cost."""
    n = cost.size
    n_chunks = int(min(n, per_thread * n_threads()))
    if n_chunks <= 1:
        return np.array([0, n], dtype=np.int64)
    cum = np.cumsum(cost, dtype=np.float64)
    targets = cum[-1] * np.arange(1, n_chunks) / n_chunks
    inner = np.searchsorted(cum, targets, side="left") + 1
    bounds = np.unique(np.concatenate(([0], np.minimum(inner, n), [n])))
    return bounds.astype(np.int64)


def _pool() -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    size = n_threads()
    if _POOL is None or _POOL_SIZE != size:
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL = ThreadPoolExecutor(max_workers=size, thread_name_prefix="mixedglm")
        _POOL_SIZE = size
    return _POOL


def run_chunks(kernel: Callable[[int, int, int], None], bounds: np.ndarray) -> None:
    """Call ``kernel(lo, hi, slot)`` for every chunk ``[bounds[slot], bounds[slot + 1])``,
    in the thread pool when there is more than one chunk (the kernel must release the GIL)."""
    n_chunks = bounds.shape[0] - 1
    if n_chunks <= 1:
        if n_chunks == 1:
            kernel(int(bounds[0]), int(bounds[1]), 0)
        return
    counter = itertools.count()  # the next chunk (its next() is atomic under the GIL)

    def drain() -> None:
        while (c := next(counter)) < n_chunks:
            kernel(int(bounds[c]), int(bounds[c + 1]), c)

    pool = _pool()  # once: it asks numba for its thread count (0.5 ms)
    helpers = [pool.submit(drain) for _ in range(min(_POOL_SIZE, n_chunks) - 1)]
    try:
        drain()  # the calling thread takes chunks too: one hand-off fewer, no idle waiter
    finally:
        for helper in helpers:
            helper.result()


def run_summed(
    kernel: Callable[[int, int, int, tuple[np.ndarray, ...]], None],
    bounds: np.ndarray,
    totals: tuple[np.ndarray, ...],
) -> None:
    """:func:`run_chunks` for a kernel that adds into ``totals``: ``kernel(lo, hi, slot,
    targets)``, chunk 0 into the arrays themselves, each further chunk into its own zeroed
    copies, added at the end in chunk order (the same sums whichever thread ran what)."""
    shares = [totals] + [tuple(np.zeros_like(t) for t in totals) for _ in range(bounds.size - 2)]
    run_chunks(lambda lo, hi, slot: kernel(lo, hi, slot, shares[slot]), bounds)
    for share in shares[1:]:
        for total, part in zip(totals, share, strict=True):
            total += part


def row_bounds(n_rows: int, min_rows: int = 20_000) -> np.ndarray:
    """Chunks of rows for row-wise kernels: one when small, else a few per thread."""
    n_chunks = 1 if n_rows < min_rows else min(4 * n_threads(), max(1, n_rows // 2000))
    return np.linspace(0, n_rows, n_chunks + 1).astype(np.int64)
