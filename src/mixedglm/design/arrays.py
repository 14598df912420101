"""The arrays a likelihood engine works on, rows sorted by cluster.

They live in ``design/`` (not in an engine) because the design builds them and every engine
reads them: the design stage then needs no engine, and no compiled code, to be imported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClusterArrays:
    """What the engine needs, rows sorted by cluster.

    Shapes: ``y``, ``trials``, ``offset``: ``(N,)``; ``X``: ``(N, p)``; ``Z``: ``(N, q)``;
    ``starts``: ``(G + 1,)`` first row of each cluster and ``N`` at the end.
    """

    y: np.ndarray
    trials: np.ndarray
    offset: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    starts: np.ndarray

    @property
    def n_obs(self) -> int:
        return self.y.shape[0]

    @property
    def n_clusters(self) -> int:
        return self.starts.shape[0] - 1
