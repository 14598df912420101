"""The sparsity pattern of the joint Laplace engine's ``H``
(:mod:`mixedglm.engines.laplace_joint`): which positions of the *rest* (the factors other
than the block factor) each block level meets, each row's local indices into that list, and
the rest's connected components, renumbered so that each is contiguous (nested models give
one small dense block per top-level cluster, crossed ones one block); and where each
factor's effects lie in ``u`` (:func:`level_indices`)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

DENSE_KEYS = 16  # _levels_meet: all keys marked where at most this many per coordinate


class Pattern(NamedTuple):
    """``pos`` (rows' coordinates, rest renumbered), ``rest_perm`` (old rest position ->
    new), ``kptr``/``kpos`` (block level ``g`` meets ``kpos[kptr[g]:kptr[g + 1]]``),
    ``loc`` (each row's indices into its level's list), ``rest_comp`` (each new rest
    position's component)."""

    pos: np.ndarray
    rest_perm: np.ndarray
    kptr: np.ndarray
    kpos: np.ndarray
    loc: np.ndarray
    rest_comp: np.ndarray


def _levels_meet(
    pos: np.ndarray, c1: np.ndarray, g1: int, q1: int, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``kptr``, ``kpos`` and ``loc`` for rows at ``pos`` in block levels ``c1``.

    Each (level, rest position) pair is a key ``level * m + position``. Where there are at
    most :data:`DENSE_KEYS` keys per row coordinate, the keys met are marked in an array of
    all keys and ranked by a cumulative sum (the crossed benchmark: 8 ms); otherwise they
    are sorted and searched (18 ms there)."""
    rest_pos = pos[:, q1:] - g1 * q1
    keys = c1[:, None] * m + rest_pos
    if g1 * m <= DENSE_KEYS * max(keys.size, 1):
        seen = np.zeros(g1 * m, dtype=bool)
        seen[keys.ravel()] = True
        uniq = np.flatnonzero(seen)
        rank = np.cumsum(seen, dtype=np.int64) - 1
        index = rank[keys]
    else:
        uniq = np.sort(keys.ravel())  # np.unique: 100 ms on the benchmark's keys, this 11
        uniq = uniq[np.concatenate([[True], uniq[1:] != uniq[:-1]])]
        index = np.searchsorted(uniq, keys)
    level = uniq // m
    kpos = np.ascontiguousarray(uniq % m)
    counts = np.bincount(level, minlength=g1)
    kptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    loc = np.ascontiguousarray(index - kptr[c1][:, None], dtype=np.int64)
    return kptr, kpos, loc


def build_pattern(pos: np.ndarray, c1: np.ndarray, g1: int, q1: int, m: int) -> Pattern:
    """The pattern of rows at ``pos`` (``(N, J)``: the block level's ``q1`` coordinates
    first) in block levels ``c1`` (``g1`` levels), with ``m`` rest positions; ``pos`` is
    renumbered in place."""
    n, width = pos.shape
    off = g1 * q1
    if width == q1:
        empty = np.zeros(0, dtype=np.int64)
        kptr = np.zeros(g1 + 1, dtype=np.int64)
        return Pattern(pos, np.arange(m), kptr, empty, np.zeros((n, 0), dtype=np.int64), empty)
    kptr, kpos, loc = _levels_meet(pos, c1, g1, q1, m)
    edges = scipy.sparse.coo_matrix(
        (np.ones(kpos.shape[0]), (np.repeat(np.arange(g1), np.diff(kptr)), kpos)),
        shape=(g1, m),
    ).tocsr()
    graph = scipy.sparse.bmat([[None, edges], [edges.T, None]]).tocsr()
    _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    _, comp = np.unique(labels[g1:], return_inverse=True)
    order = np.lexsort((np.arange(m), comp))  # new -> old
    rest_perm = np.empty(m, dtype=np.int64)
    rest_perm[order] = np.arange(m)
    if np.array_equal(order, np.arange(m)):  # contiguous already (crossed: one component)
        return Pattern(pos, rest_perm, kptr, kpos, loc, comp[order].astype(np.int64))
    pos[:, q1:] = off + rest_perm[pos[:, q1:] - off]
    kptr, kpos, loc = _levels_meet(pos, c1, g1, q1, m)
    return Pattern(pos, rest_perm, kptr, kpos, loc, comp[order].astype(np.int64))


def rows_by_level(c1: np.ndarray, g1: int) -> tuple[np.ndarray, np.ndarray]:
    """``rptr``, ``order``: block level ``g``'s rows are ``order[rptr[g]:rptr[g + 1]]``, in
    their order in the data (the identity where the rows are sorted by level)."""
    counts = np.bincount(c1, minlength=g1)
    rptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    if c1.size and np.all(c1[1:] >= c1[:-1]):
        return rptr, np.arange(c1.size, dtype=np.int64)
    return rptr, np.argsort(c1, kind="stable").astype(np.int64)


def level_indices(
    shapes: list[tuple[int, int]], block: int, n_block: int, rest_perm: np.ndarray
) -> list[np.ndarray]:
    """Per factor (``shapes``: each one's levels and effects per level), the positions in
    ``u`` of each level's effects ``(levels, q)``: the block factor's first, the others'
    after its ``n_block``, renumbered by ``rest_perm`` (:func:`build_pattern`)."""
    out = []
    start = 0  # in the rest, before its renumbering by component
    for k, (n_levels, q) in enumerate(shapes):
        local = np.arange(n_levels * q).reshape(n_levels, q)
        if k == block:
            out.append(local)
            continue
        out.append(n_block + rest_perm[start + local])
        start += n_levels * q
    return out
