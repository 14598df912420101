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
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from mixedglm.engines.rules import IntegrationRule
from mixedglm.optim import Evaluation

if TYPE_CHECKING:
    from mixedglm.families import Family


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


class _Sized(Protocol):
    """What :class:`ParameterVector` reads from its engine."""

    @property
    def family(self) -> Family: ...
    @property
    def n_beta(self) -> int: ...
    @property
    def n_theta(self) -> int: ...
    @property
    def n_aux(self) -> int: ...


class _Factored(_Sized, Protocol):
    """What :class:`FactorParameters` reads from its engine."""

    @property
    def X(self) -> np.ndarray: ...
    @property
    def _theta_slices(self) -> list[slice]: ...


class _Ruled(Protocol):
    """What :class:`RuleAccessors` reads from its engine."""

    @property
    def rule(self) -> IntegrationRule: ...


class RuleAccessors:
    """An engine's integration rule's ``nagq``, ``method`` and ``curvature`` (mixin; the
    engine holds the rule as ``rule``)."""

    @property
    def nagq(self: _Ruled) -> int:
        return self.rule.nagq

    @property
    def method(self: _Ruled) -> str:
        return self.rule.method

    @property
    def curvature(self: _Ruled) -> str:
        return self.rule.curvature


class ParameterVector:
    """The parts of an engine's ``[beta, theta, aux]`` (mixin): the engine defines
    ``n_beta``, ``n_theta`` and ``family``."""

    @property
    def n_aux(self: _Sized) -> int:
        return self.family.n_aux

    @property
    def n_params(self: _Sized) -> int:
        return self.n_beta + self.n_theta + self.n_aux

    def split(self: _Sized, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``params`` -> ``(beta, theta, aux)``."""
        p, t = self.n_beta, self.n_theta
        return params[:p], params[p : p + t], params[p + t :]


class FactorParameters(ParameterVector):
    """:class:`ParameterVector` of an engine of several grouping factors, with the fixed
    effects' design ``X`` and each factor's slice of ``theta`` (``_theta_slices``)."""

    @property
    def n_beta(self: _Factored) -> int:
        return self.X.shape[1]

    def theta_of(self: _Factored, theta: np.ndarray, k: int) -> np.ndarray:
        """Factor ``k``'s part of ``theta``."""
        return theta[self._theta_slices[k]]


EngineFactory = Callable[[IntegrationRule], Engine]
"""Makes the model's engine for a rule: the GLMM driver asks for a Laplace engine (start
values), a coarse one and the full one, all on the same data. An in-memory factory builds the
engine from arrays; a Dask factory builds one per partition on the workers."""
