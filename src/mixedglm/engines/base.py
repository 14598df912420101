"""The engine interface: what every likelihood engine answers, as pure functions of the
parameters.

An engine holds the model's arrays (rows sorted by top-level cluster) and turns a parameter
vector ``[beta, theta, aux]`` into

* :meth:`Engine.evaluate`: the log-likelihood, gradient and Hessian summed over the
  top-level clusters (an :class:`~mixedglm.optim.Evaluation`; ``order`` 0, 1 or 2);
* :meth:`Engine.contributions`: per top-level cluster, the log-likelihood and the score
  (for sandwich standard errors, group weights and the Dask reduction);
* :meth:`Engine.posterior`: the random effects' posterior summaries (means or modes, and
  their covariances) per grouping factor.

The optimiser sees only ``evaluate`` (an engine is callable as ``engine(params, order)``), the
results see only ``posterior`` and ``contributions``: nothing outside an engine reads its
internal state (warm starts of modes and grids live inside it and never change a result,
only how fast it is reached).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from mixedglm.engines.rules import IntegrationRule
from mixedglm.optim import Evaluation


@dataclass(frozen=True)
class Contributions:
    """Per-top-level-cluster terms at one parameter vector.

    ``loglik``: ``(G,)``; ``score``: ``(G, P)`` (each cluster's gradient; they sum to the
    total gradient).
    """

    loglik: np.ndarray
    score: np.ndarray


@dataclass(frozen=True)
class Posterior:
    """Posterior summaries of one grouping factor's random effects on the scale of ``b``.

    ``mean``: ``(G, q)`` posterior means (AGHQ) or conditional modes (Laplace);
    ``cov``: ``(G, q, q)`` posterior covariances (or the inverse curvature at the mode);
    ``kind``: ``"means"`` or ``"modes"``. On the spherical scale ``u`` (``b = Lambda u``).
    """

    mean: np.ndarray
    cov: np.ndarray
    kind: str = "means"


@runtime_checkable
class Engine(Protocol):
    """The protocol every likelihood engine implements."""

    @property
    def n_params(self) -> int:
        """Length of the parameter vector."""
        ...

    def evaluate(self, params: np.ndarray, order: int) -> Evaluation:
        """Log-likelihood and, for ``order`` >= 1 / == 2, gradient and Hessian (sums)."""
        ...

    def contributions(self, params: np.ndarray) -> Contributions:
        """Per-top-level-cluster log-likelihoods and scores."""
        ...

    def posterior(self, params: np.ndarray, kind: str = "means") -> dict[str, Posterior]:
        """Random-effect summaries keyed by grouping factor (empty for conditional models):
        posterior means and covariances (``kind="means"``) or conditional modes and the
        inverse curvature there (``kind="modes"``)."""
        ...

    def __call__(self, params: np.ndarray, order: int) -> Evaluation:
        """Same as :meth:`evaluate`: the optimiser's interface."""
        ...


EngineFactory = Callable[[IntegrationRule], Engine]
"""Makes the model's engine for a rule: the GLMM driver asks for a Laplace engine (start
values), a coarse one and the full one, all on the same data. An in-memory factory builds the
engine from arrays; a Dask factory builds one per partition on the workers."""
