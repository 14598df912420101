"""``parallel.run_chunks``: the calling thread and the pool take the chunks from a shared
counter; every chunk runs once, with its slot, and a kernel's error reaches the caller.
``run_summed``: chunks adding into shared totals, each chunk once, summed in chunk order."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mixedglm.engines import parallel


def test_every_chunk_once_on_the_caller_and_the_pool(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(parallel, "n_threads", lambda: 2)
    bounds = np.array([0, 3, 5, 9, 10, 14, 20], dtype=np.int64)
    seen: list[tuple[int, int, int]] = []
    threads: set[int] = set()
    lock = threading.Lock()

    def kernel(lo: int, hi: int, slot: int) -> None:
        with lock:
            seen.append((lo, hi, slot))
            threads.add(threading.get_ident())

    parallel.run_chunks(kernel, bounds)
    expected = [(int(bounds[c]), int(bounds[c + 1]), c) for c in range(bounds.size - 1)]
    assert sorted(seen) == expected
    assert threads <= {threading.get_ident()} | {t.ident for t in threading.enumerate()}


def test_a_kernel_error_reaches_the_caller(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(parallel, "n_threads", lambda: 2)
    done: list[int] = []

    def kernel(lo: int, hi: int, slot: int) -> None:
        if slot == 2:
            raise ValueError("chunk 2")
        done.append(slot)

    with pytest.raises(ValueError, match="chunk 2"):
        parallel.run_chunks(kernel, np.arange(6, dtype=np.int64))
    assert sorted(done) == [0, 1, 3, 4]


def test_run_summed_adds_every_chunk_once_in_chunk_order():
    values = np.arange(1.0, 101.0)
    bounds = np.array([0, 10, 35, 70, 100], dtype=np.int64)
    total = np.full(1, 5.0)  # chunk 0 adds into the array itself, the others into copies
    seen = []

    def kernel(lo, hi, slot, share):
        seen.append(slot)
        share[0][0] += values[lo:hi].sum()

    parallel.run_summed(kernel, bounds, (total,))
    assert sorted(seen) == [0, 1, 2, 3]
    want = 5.0 + values[0:10].sum()
    for lo, hi in ((10, 35), (35, 70), (70, 100)):
        want += values[lo:hi].sum()
    assert total[0] == want
