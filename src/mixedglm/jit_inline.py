"""Faster numba-level inlining (``inline="always"``): no defensive copies of fresh IR.

numba's inliner builds the callee's IR afresh for every call site (it reruns the untyped
passes on the callee) and then deep-copies it twice before splicing it in: once to mutate
and once to return an untouched original, which the ``inline="always"`` path throws away.
Each copy copies the function's whole variable scope once per block, so the cost grows with
blocks x variables of the callee, and callees that inline others are large. For the nested
quadrature kernel (a state machine of a few dozen inlined helpers) these copies were a
quarter of the first fit's compilation: 80.8 s of CPU before, 61 s after (numba 0.68.1,
an empty cache, a nested logit on the test data). Upstream: numba issues #8989 and #9204.

:func:`install` replaces ``InlineWorker.inline_function`` by a version that hands the fresh
IR to ``inline_ir`` with copying switched off (``copy.deepcopy`` of that module returns its
argument while the call runs; numba compiles under its global compiler lock, so no other
compilation sees the switch). The machine code is the same; only the compile is faster.
The patch applies only when numba's source of both methods is the one it was written for;
otherwise numba is left as it is, and everything still works, more slowly.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from numba.core import inline_closurecall

_EXPECTED_INLINE_FUNCTION = (
    "callee_ir = self.run_untyped_passes(function) "
    "freevars = function.__code__.co_freevars "
    "return self.inline_ir(caller_ir, block, i, callee_ir, freevars, arg_typs=arg_typs)"
)
_EXPECTED_COPY = "new_block = copy.deepcopy(the_ir.blocks[block_label])"


class _NoDeepCopy:
    """Stands in for the ``copy`` module inside ``inline_closurecall`` during a splice."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value


def _inline_function(self: Any, caller_ir: Any, block: Any, i: int, function: Any,
                     arg_typs: Any = None) -> Any:  # fmt: skip
    callee_ir = self.run_untyped_passes(function)  # fresh IR, used once: no copy needed
    freevars = function.__code__.co_freevars
    inline_closurecall.copy = _NoDeepCopy  # type: ignore[assignment]
    try:
        return self.inline_ir(caller_ir, block, i, callee_ir, freevars, arg_typs=arg_typs)
    finally:
        inline_closurecall.copy = copy


_inline_function.mixedglm_patch = True  # type: ignore[attr-defined]


def matches_numba(worker: Any) -> bool:
    """Whether ``worker`` (numba's ``InlineWorker``) has the methods this patch assumes
    (before the patch: once installed, the original is ``_inline_function.original``)."""
    inline_function = getattr(worker.inline_function, "original", worker.inline_function)
    try:
        function_source = inspect.getsource(inline_function)
        ir_source = inspect.getsource(worker.inline_ir)
    except (OSError, TypeError, AttributeError):
        return False
    code = function_source.rsplit('"""', 1)[-1]  # the body after the docstring
    return " ".join(code.split()) == _EXPECTED_INLINE_FUNCTION and _EXPECTED_COPY in ir_source


def install() -> bool:
    """Patch numba's inliner when it is the expected version; True when the patch is active."""
    worker = getattr(inline_closurecall, "InlineWorker", None)
    if worker is None:
        return False
    if getattr(worker.inline_function, "mixedglm_patch", False):
        return True
    if not matches_numba(worker):
        return False
    _inline_function.original = worker.inline_function  # type: ignore[attr-defined]
    worker.inline_function = _inline_function
    return True
