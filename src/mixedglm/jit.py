"""The one way the package compiles a kernel: numba, cached (see ``compile_cache``), with
numpy's error model (no Python exceptions for division by zero: smaller code that compiles
faster; the kernels check what matters themselves). Importing it makes numba's inliner skip
its defensive IR copies (``jit_inline``), which made inlined state machines slow to compile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
from numba.core import cgutils, types
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

from mixedglm import jit_inline, jit_ssa

jit_inline.install()
jit_ssa.install()


def kernel(
    fn: Callable[..., Any] | None = None, *, nogil: bool = False, inline: bool = False
) -> Any:
    """``@kernel``, ``@kernel(nogil=True)`` (for kernels run from the thread pool) or
    ``@kernel(inline=True)``: glue called once, inlined into its caller at numba's level, so
    that its callees are not linked and compiled once more for it (measured: 7% less
    compilation on a first fit)."""
    decorate = numba.njit(
        cache=True, error_model="numpy", nogil=nogil, inline="always" if inline else "never"
    )
    return decorate if fn is None else decorate(fn)


def _borrowed(context: Any, builder: Any, typ: Any, value: Any) -> Any:
    if isinstance(typ, types.Array):
        ary = context.make_array(typ)(context, builder, value=value)
        out = context.make_array(typ)(context, builder)
        populate_array(
            out, data=ary.data, shape=ary.shape, strides=ary.strides, itemsize=ary.itemsize,
            meminfo=None,
        )  # fmt: skip
        return out._getvalue()
    if isinstance(typ, types.BaseTuple):
        out = cgutils.get_null_value(value.type)
        members: Any = typ
        for i, member in enumerate(members):
            item = _borrowed(context, builder, member, builder.extract_value(value, i))
            out = builder.insert_value(out, item, i)
        return out
    return value


def _borrow(typingctx: Any, value: Any) -> Any:
    """``borrow(x)``, in compiled code: the array ``x``, or the (named) tuple ``x`` with
    every array in it, as views that numba does not reference-count (no owner). Every array
    taken from a record in a loop otherwise costs an atomic increment and decrement, which
    took a third of the nested engine's time (and more with threads sharing the arrays).
    The caller must keep ``x`` itself alive while the views are in use."""
    if not isinstance(value, types.Array | types.BaseTuple):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return _borrowed(context, builder, sig.args[0], args[0])

    return value(value), codegen


borrow: Any = intrinsic(_borrow)
