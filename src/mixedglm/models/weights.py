"""A weighted GLMM fit: the engines on arrays that carry the weights.

The quadrature kernel multiplies each observation's log-density (and its derivatives) by
``ClusterArrays.weights`` inside the integral over the random effects, and each cluster's
log-likelihood, score and Hessian by ``ClusterArrays.cluster_weights``. The pooled GLM (start
values and the LR test's reference) gets each row's total weight (its own times its
cluster's), so its log-likelihood is that of the weighted model without random effects. The
weights themselves are checked and read in :mod:`mixedglm.design.weights`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mixedglm.design.build import ModelDesign
from mixedglm.engines.aghq import AGHQEngine
from mixedglm.engines.base import Engine, EngineFactory
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.engines.glm import GLMObjective
from mixedglm.engines.rules import IntegrationRule
from mixedglm.families import Family

__all__ = ["row_weights", "weighted_engines"]


def row_weights(
    design: ModelDesign, obs: np.ndarray | None, clusters: np.ndarray | None
) -> np.ndarray:
    """Each row's total weight: its own times its cluster's (rows in the design's order)."""
    out = np.ones(design.n_obs) if obs is None else np.asarray(obs, dtype=float).copy()
    if clusters is not None:
        out = out * clusters[design.group_codes]
    return out


def weighted_engines(
    design: ModelDesign,
    family: Family,
    structure: CovarianceStructure,
    obs: np.ndarray | None,
    clusters: np.ndarray | None,
) -> tuple[EngineFactory, GLMObjective]:
    """The engine factory and pooled GLM of :func:`mixedglm.models.glmm.fit_glmm` with
    observation weights ``obs`` ``(N,)`` and cluster weights ``clusters`` ``(G,)``."""
    arrays = replace(design.cluster_arrays(), weights=obs, cluster_weights=clusters)
    factor = design.group.name if design.group is not None else "group"

    def make(rule: IntegrationRule) -> Engine:
        return AGHQEngine(arrays, family, structure, rule, factor=factor)

    pooled = GLMObjective(
        arrays.X, arrays.y, arrays.trials, arrays.offset, family, row_weights(design, obs, clusters)
    )
    return make, pooled
