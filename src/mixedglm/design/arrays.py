"""The arrays an engine works on: rows sorted by top-level cluster."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    @property
    def n_obs(self) -> int:
        return self.y.shape[0]

    @property
    def n_clusters(self) -> int:
        return self.starts.shape[0] - 1
