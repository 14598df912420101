"""Single-factor adaptive Gauss-Hermite quadrature and Laplace (q random effects).

``engine.py`` (the engine), ``chunk.py`` (the compiled loop over clusters and threads),
``cluster.py`` (records, weighted observation terms, mode, grid values), ``derivatives.py``
(fixed-grid score and Louis Hessian), ``motion.py`` (the grid's movement), ``linalg.py``,
``predictors.py``; ``vectorised.py`` with ``vectorised_basics.py`` and
``vectorised_derivs.py`` (the NumPy mirror of ``chunk`` for one random effect, run while the
compiled kernel is not built), ``implementation.py`` (which of the two a model takes).
"""

from mixedglm.design.arrays import ClusterArrays
from mixedglm.engines.aghq.engine import AGHQEngine, AGHQObjective

__all__ = ["AGHQEngine", "AGHQObjective", "ClusterArrays"]
