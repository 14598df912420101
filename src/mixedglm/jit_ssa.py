"""Fewer stack slots in the package's compiled kernels: variables that live across blocks.

numba gives every variable of a compiled function a stack slot (an LLVM ``alloca``), stores
each assignment into it and loads it at each read, except a variable assigned once and used
only in the block that assigns it, which it keeps as the value itself. LLVM's SROA pass then
turns the slots back into values. For the nested quadrature kernel (a state machine of a few
dozen inlined helpers passing named tuples of arrays) that pass took most of the
compilation: the function-level passes on its one large function used 20 s of CPU, SROA
more than half of it, and the cold first nested fit 58 s in all.

:func:`install` extends numba's treatment to variables that live across blocks when it is
provably the same program, all of these holding:

* the variable is assigned once in the function (after numba's SSA pass: most are);
* the block assigning it dominates every block that reads it, does not read it before the
  assignment, and is lowered first (numba lowers blocks in label order), so the value is
  defined wherever it is read;
* numba releases it (an ``ir.Del``: a reference-count decrement for arrays) only in blocks
  the assignment dominates, lowered after it, none in a loop without the assignment, and
  every path from the assignment meets exactly one of them before the function ends, the
  assignment runs again or control leaves the blocks it dominates: one release per
  assignment. numba's slots are zeroed after a release, which makes repeated releases
  harmless; values are not, so every other variable keeps its slot.

Only functions of this package, outside generators, parallel (``prange``) and debug builds,
are affected; other numba users in the process compile as before. The patch applies only
when numba's lowering has the methods and fields it was written for (numba 0.68); otherwise
numba is left alone and everything works, compiling more slowly. Measured (numba 0.68.1,
empty cache, the nested test logit): 58 s of CPU before, 38 to 40 s after; estimates, SEs and
log-likelihoods equal to all printed digits; the one-factor kernels compile as before.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from numba.core import ir, lowering
from numba.core.analysis import compute_cfg_from_blocks, compute_use_defs, must_use_alloca

_REQUIRED = ("_find_singly_assigned_variable", "storevar", "loadvar", "delvar", "_alloca_var")


def _dominator_intervals(idom: dict[int, int], entry: int) -> dict[int, tuple[int, int]]:
    """Pre/post-order numbers of the dominator tree: ``a`` dominates ``b`` when ``b``'s
    interval lies in ``a``'s."""
    children: dict[int, list[int]] = defaultdict(list)
    for node, parent in idom.items():
        if node != parent:
            children[parent].append(node)
    intervals: dict[int, tuple[int, int]] = {}
    counter = 0
    stack: list[tuple[int, bool]] = [(entry, False)]
    start: dict[int, int] = {}
    while stack:
        node, done = stack.pop()
        if done:
            intervals[node] = (start[node], counter)
            counter += 1
            continue
        start[node] = counter
        counter += 1
        stack.append((node, True))
        stack.extend((child, False) for child in children[node])
    return intervals


class _Flow:
    """The control flow facts of one function that :func:`kept_as_values` asks."""

    def __init__(self, blocks: dict[int, ir.Block]) -> None:
        cfg = compute_cfg_from_blocks(blocks)
        self.succs = {label: [s for s, _ in cfg.successors(label)] for label in blocks}
        entry = min(blocks)
        self.intervals = _dominator_intervals(cfg.immediate_dominators(), entry)
        self.loops: dict[int, frozenset[int]] = defaultdict(frozenset)
        for header, loop in cfg.loops().items():
            for node in loop.body:
                self.loops[node] = self.loops[node] | {header}

    def dominates(self, a: int, b: int) -> bool:
        ia, ib = self.intervals.get(a), self.intervals.get(b)
        return ia is not None and ib is not None and ia[0] <= ib[0] and ib[1] <= ia[1]

    def _ends(self, d: int, node: int, stop: set[int]) -> bool:
        """Whether a path from ``node`` (in the blocks ``d`` dominates) ends (the function
        returns or raises, comes back to ``d`` or leaves those blocks) without meeting a
        block of ``stop``."""
        seen = {node}
        todo = [node]
        while todo:
            here = todo.pop()
            succs = self.succs[here]
            if not succs:
                return True
            for nxt in succs:
                if nxt in stop:
                    continue
                if nxt == d or not self.dominates(d, nxt):
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    def released_once(self, d: int, dels: set[int]) -> bool:
        """Every path from block ``d`` meets exactly one block of ``dels`` before it ends,
        comes back to ``d`` or leaves the blocks ``d`` dominates (all of ``dels`` lie
        there)."""
        if self._ends(d, d, dels):
            return False  # a path without a release
        for u in dels:  # from one release, no path to another one (or the same)
            if self._meets(d, u, dels):
                return False
        return True

    def _meets(self, d: int, u: int, dels: set[int]) -> bool:
        seen = {u}
        todo = [u]
        while todo:
            here = todo.pop()
            for nxt in self.succs[here]:
                if nxt in dels:
                    return True
                if nxt == d or not self.dominates(d, nxt) or nxt in seen:
                    continue
                seen.add(nxt)
                todo.append(nxt)
        return False


def kept_as_values(blocks: dict[int, ir.Block], skip: Iterable[str]) -> set[str]:
    """The variables (beyond ``skip``, numba's own block-local ones) that can live without a
    stack slot under the conditions of the module doc."""
    skip = set(skip) | must_use_alloca(blocks)
    assigned: dict[str, list[int]] = defaultdict(list)
    released: dict[str, list[int]] = defaultdict(list)
    for label, block in blocks.items():
        for stmt in block.body:
            if isinstance(stmt, ir.Assign):
                assigned[stmt.target.name].append(label)
            elif isinstance(stmt, ir.Del):
                released[stmt.value].append(label)
    read_in: dict[str, set[int]] = defaultdict(set)
    for label, names in compute_use_defs(blocks).usemap.items():
        for name in names:
            read_in[name].add(label)
    flow: _Flow | None = None
    out: set[str] = set()
    for name, labels in assigned.items():
        dels = set(released.get(name, ()))
        if len(labels) != 1 or name in skip or not dels:
            continue
        d = labels[0]
        reads = read_in.get(name, set())
        if not reads or d in reads or any(b <= d for b in reads | dels):
            continue  # block-local (numba's own case), read before assigned, or lowered first
        flow = flow or _Flow(blocks)
        if not all(flow.dominates(d, b) for b in reads | dels):
            continue
        if any(not flow.loops[u] <= flow.loops[d] for u in dels):
            continue  # a release would run again without the assignment
        if flow.released_once(d, dels):
            out.add(name)
    return out


MODULES: tuple[str, ...] = ("mixedglm.",)
"""Functions of modules with these prefixes are compiled with the patch (tests add theirs)."""


def _ours(lower: Any) -> bool:
    func = getattr(lower.func_ir.func_id, "func", None)
    module = getattr(func, "__module__", "") or ""
    flags = getattr(lower, "flags", None)
    parallel = bool(getattr(getattr(flags, "auto_parallel", None), "enabled", False))
    return module.startswith(MODULES) and not parallel


def _find_singly_assigned_variable(self: Any) -> None:
    _find_singly_assigned_variable.original(self)  # type: ignore[attr-defined]
    if self.func_ir.func_id.is_generator or self._disable_sroa_like_opt or not _ours(self):
        return
    self._singly_assigned_vars |= kept_as_values(self.func_ir.blocks, self._singly_assigned_vars)


_find_singly_assigned_variable.mixedglm_patch = True  # type: ignore[attr-defined]


def matches_numba(lower: Any = lowering.Lower) -> bool:
    """Whether numba's ``Lower`` keeps block-local variables the way this patch assumes."""
    if not all(hasattr(lower, name) for name in _REQUIRED):
        return False
    try:
        store = inspect.getsource(lower.storevar)
        load = inspect.getsource(lower.loadvar)
        delete = inspect.getsource(lower.delvar)
    except (OSError, TypeError):
        return False
    return (
        "self._blk_local_varmap[name] = value" in store
        and "return self._blk_local_varmap[name]" in load
        and "self._singly_assigned_vars.discard(name)" in delete
    )


def install() -> bool:
    """Patch numba's lowering when it is the expected version; True when active."""
    current = lowering.Lower._find_singly_assigned_variable
    if getattr(current, "mixedglm_patch", False):
        return True
    if not matches_numba():
        return False
    _find_singly_assigned_variable.original = current  # type: ignore[attr-defined]
    lowering.Lower._find_singly_assigned_variable = _find_singly_assigned_variable  # type: ignore[method-assign]
    return True
