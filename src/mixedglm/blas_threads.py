"""One BLAS thread for a dense factorisation: :func:`one_blas_thread`.

numpy and scipy ship OpenBLAS, which splits a Cholesky factor over all cores. On cores
the process shares (pytest-xdist's workers, a Dask cluster's, any other program) its
threads spin and wait for each other: a 1,156 x 1,156 Cholesky factor took 126 to 485 ms
with the default threads under a load of 3 on 2 cores, and 16 ms on one thread. Inside
``with one_blas_thread():`` every loaded OpenBLAS runs on one thread; the counts are
restored on exit. The libraries are found in ``/proc/self/maps`` and set through their own
``*_set_num_threads`` functions (what threadpoolctl does, for the two libraries that
matter here); where none is found (another platform, another BLAS) the block runs as it
would anyway.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS before the libraries are listed)

_LOCK = threading.RLock()  # re-entrant: a nested use in one thread must not deadlock
_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "")


def _loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries mapped into this process (Linux)."""
    if not sys.platform.startswith("linux"):
        return []
    paths = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(None, 1)[-1]
                name = os.path.basename(path).lower()
                if path.startswith("/") and "openblas" in name and ".so" in name:
                    paths.add(path)
    except OSError:
        return []
    return sorted(paths)


@functools.cache
def controls() -> tuple[tuple[Any, Any], ...]:
    """``(get_num_threads, set_num_threads)`` of every loaded OpenBLAS."""
    out = []
    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            found = None
            for suffix in _SUFFIXES:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = [ctypes.c_int]
                    found = (get, put)
                    break
            if found:
                out.append(found)
                break
    return tuple(out)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with every loaded OpenBLAS on one thread (restored afterwards)."""
    libs = controls()
    if not libs:
        yield
        return
    with _LOCK:
        before = [get() for get, _ in libs]
        for _, put in libs:
            put(1)
        try:
            yield
        finally:
            for (_, put), n in zip(libs, before, strict=True):
                put(n)
