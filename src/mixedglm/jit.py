"""The one way the package compiles a kernel: numba, cached (see ``compile_cache``), with
numpy's error model (no Python exceptions for division by zero: smaller code that compiles
faster; the kernels check what matters themselves)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba


def kernel(fn: Callable[..., Any] | None = None, *, nogil: bool = False) -> Any:
    """``@kernel`` or ``@kernel(nogil=True)`` (for kernels run from the thread pool)."""
    decorate = numba.njit(cache=True, error_model="numpy", nogil=nogil)
    return decorate if fn is None else decorate(fn)
