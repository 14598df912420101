"""The arrays an engine works on: rows sorted by top-level cluster."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

# rows handled at a time where a pass over the data must not make a temporary of its length
# (per-cluster sums, checks of a built matrix, filling its columns while they stay in cache)
BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class ClusterArrays:
    """What the likelihood engines need, rows sorted by cluster.

    Shapes: ``y``, ``trials``, ``offset``: ``(N,)``; ``X``: ``(N, p)``; ``Z``: ``(N, q)``;
    ``starts``: ``(G + 1,)`` first row of each cluster and ``N`` at the end; ``weights``:
    ``(N,)`` frequency or sampling weights of the observations (``None``: all 1);
    ``cluster_weights``: ``(G,)`` weights of the clusters (``None``: all 1).
    """

    y: np.ndarray
    trials: np.ndarray
    offset: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    starts: np.ndarray
    weights: np.ndarray | None = None
    cluster_weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        # numba compiles a kernel anew for read-only arrays (pandas' copy-on-write hands out
        # read-only views): 13 s of compilation for the same family a second time. Read-only
        # inputs are copied once here instead (the engines never write to them).
        for name in ("y", "trials", "offset", "X", "Z", "starts", "weights", "cluster_weights"):
            value = getattr(self, name)
            if isinstance(value, np.ndarray) and not value.flags.writeable:
                object.__setattr__(self, name, value.copy())

    @property
    def n_obs(self) -> int:
        return self.y.shape[0]

    @property
    def n_clusters(self) -> int:
        return self.starts.shape[0] - 1

    def cluster_sums(self, per_row: Callable[[slice], np.ndarray]) -> np.ndarray:
        """``(G,)`` sums over each cluster's rows of ``per_row(rows)`` (a function of a
        slice of rows, such as a family's log-density constant), weighted by ``weights``;
        computed in blocks of whole clusters, so no temporary has the data's length."""
        starts = self.starts
        g = self.n_clusters
        sums = np.zeros(g)
        if g == 0:
            return sums
        cuts = np.unique(np.searchsorted(starts, np.arange(0, self.n_obs, BLOCK_ROWS)))
        cuts = np.unique(np.concatenate([cuts[cuts < g], [g]]))
        for c0, c1 in pairwise(cuts):
            rows = slice(int(starts[c0]), int(starts[c1]))
            values = per_row(rows)
            if self.weights is not None:
                values = values * self.weights[rows]
            sums[c0:c1] = np.add.reduceat(values, starts[c0:c1] - starts[c0])
        return sums

    def log_constants(self, family: object) -> np.ndarray:
        """``(G,)`` per-cluster sums of ``family.log_constant(y, trials)``, the part of the
        log-density free of parameters."""
        log_constant = family.log_constant  # type: ignore[attr-defined]
        return self.cluster_sums(lambda rows: log_constant(self.y[rows], self.trials[rows]))
