"""The one place where the user's ``method``, ``nagq`` and ``curvature`` become a rule.

:func:`make_rule` checks the options once, at the boundary, and returns an
:class:`IntegrationRule` that the engines receive. Nothing downstream changes the rule: there
is no silent switch (a conflicting or impossible choice is an error that says what to do).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

from mixedglm.errors import MixedGLMError

METHODS = ("mvaghermite", "mcaghermite", "laplace")
CURVATURES = ("observed", "fisher")
DEFAULT_NAGQ = 7
# numpy's Gauss-Hermite weights are accurate to ~1e-15 up to 300 points and overflow past
# about 350; 200 leaves a margin (and is far beyond any useful rule)
MAX_NAGQ = 200
LARGE_GRID = 1000
MEANVAR_TOLERANCE = 1e-10


@dataclass(frozen=True)
class IntegrationRule:
    """How the random effects are integrated out.

    ``method``: ``mvaghermite`` (grid at each cluster's posterior mean and variance, Stata's
    default), ``mcaghermite`` (at the mode and curvature, lme4's) or ``laplace`` (one point at
    the mode); ``nagq``: points per random effect (1 for Laplace); ``curvature``: ``observed``
    or ``fisher`` (expected information, lme4's PIRLS weights; mode-curvature grids only);
    ``tolerance``: how closely a mean-variance grid must sit at its fixed point (the
    posterior mean and covariance computed on it), in posterior SDs (Stata's
    ``adaptopts(tolerance())``, 1e-8 there; tighter here for exact gradients); ``levels``:
    points per nested level, ``(factor, nagq)`` pairs (empty: ``nagq`` at every level; the
    factors' names as given until :func:`~mixedglm.models.multilevel.multilevel_rule`
    resolves them), ``nagq`` then their largest.
    """

    method: str = "mvaghermite"
    nagq: int = DEFAULT_NAGQ
    curvature: str = "observed"
    tolerance: float = MEANVAR_TOLERANCE
    levels: tuple[tuple[str, int], ...] = ()

    @property
    def is_laplace(self) -> bool:
        return self.method == "laplace"

    @property
    def is_meanvar(self) -> bool:
        return self.method == "mvaghermite"

    def n_points(self, q: int) -> int:
        """Quadrature points per cluster for ``q`` random effects (the grid actually used)."""
        return self.nagq**q

    def with_points(self, nagq: int, tolerance: float | None = None) -> IntegrationRule:
        """The same kind of rule with another number of points (and grid tolerance): the
        coarse stage's rule."""
        if self.is_laplace:
            return self
        tol = self.tolerance if tolerance is None else tolerance
        if self.is_meanvar and nagq < 3:
            return IntegrationRule("mcaghermite", nagq, self.curvature, tol)
        return IntegrationRule(self.method, nagq, self.curvature, tol)

    def laplace(self) -> IntegrationRule:
        """The Laplace rule with this rule's curvature."""
        return IntegrationRule("laplace", 1, self.curvature)

    def points(self, factor: str) -> int:
        """Points per random effect at the level of ``factor`` (a resolved name)."""
        return dict(self.levels).get(factor, self.nagq)

    def describe(self) -> str:
        """Words for the output: ``mvaghermite`` with 7 points, or ``Laplace``."""
        if self.is_laplace:
            return "Laplace"
        if self.levels:
            each = ", ".join(f"{name} {n}" for name, n in self.levels)
            return f"{self.method} (points per level: {each})"
        return f"{self.method} ({self.nagq} points)"


def _as_count(value: object, name: str) -> int:
    """A positive whole number from an int, a whole float or a numeric string."""
    if isinstance(value, bool) or value is None:
        raise MixedGLMError(f"{name} must be a positive integer, not {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise MixedGLMError(f"{name} must be a positive integer, not {value!r}") from None
    if not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise MixedGLMError(f"{name} must be a positive integer, not {value!r}")
    number = float(value)
    if number != int(number) or int(number) < 1:
        raise MixedGLMError(f"{name} must be a positive integer, not {value!r}")
    return int(number)


def _level_points(nagq: Mapping) -> tuple[tuple[str, int], ...]:
    """``{factor: points}`` checked: names are strings, counts whole numbers in 1 .. MAX."""
    if not nagq:
        raise MixedGLMError("nagq per level is empty: give {factor: points} for every level")
    out = []
    for name, value in nagq.items():
        if not isinstance(name, str) or not name.strip():
            raise MixedGLMError(f"nagq per level: factor names are strings, not {name!r}")
        out.append((name.strip(), _as_count(value, f"nagq['{name}']")))
    return tuple(out)


def _check_level_minimum(kind: str, levels: tuple[tuple[str, int], ...]) -> None:
    """Per-level counts with nested quadrature: mean-variance grids need 3 points, and one
    point (a Laplace node) is refused for mode-curvature grids too (its exact gradient would
    need the curvature's derivative, third derivatives of the lower levels' integrals)."""
    if kind == "laplace":
        raise MixedGLMError(
            "method='laplace' uses one point per random effect at every level; nagq per "
            "level is for quadrature (mvaghermite or mcaghermite)"
        )
    least = 3 if kind == "mvaghermite" else 2
    low = [f"{name}={n}" for name, n in levels if n < least]
    if low:
        raise MixedGLMError(
            f"nagq per level: {', '.join(low)} is too few points for {kind}, which needs at "
            f"least {least} per random effect at every level"
            + (" (2 points do not determine the mean-variance grid's scale)" if least == 3 else "")
            + "; method='laplace' is the joint Laplace approximation of all levels"
        )


def make_rule(
    method: object = None,
    nagq: object = None,
    curvature: object = None,
    *,
    supports_fisher: bool = True,
) -> IntegrationRule:
    """Check the integration options and return the rule.

    ``nagq=None`` means the default (7 points; 1 for ``method="laplace"``); ``nagq=1`` alone
    means Laplace. ``method="laplace"`` with ``nagq`` other than 1, ``nagq=1`` with a
    quadrature method, ``nagq=2`` with ``mvaghermite`` (two points do not determine the
    mean-variance grid's scale), ``curvature="fisher"`` with ``mvaghermite`` or for a family
    without expected-information weights (``supports_fisher=False``) are errors. A mapping
    ``{factor: points}`` gives each nested level its own count (at least 3 with
    ``mvaghermite``, 2 with ``mcaghermite``).
    """
    levels: tuple[tuple[str, int], ...] = ()
    if isinstance(nagq, Mapping):
        levels = _level_points(nagq)
        nagq = max(n for _, n in levels)
    points = None if nagq is None else _as_count(nagq, "nagq")
    if points is not None and points > MAX_NAGQ:
        raise MixedGLMError(
            f"nagq={points} is more quadrature points than the rule computes accurately "
            f"(at most {MAX_NAGQ} per random effect)"
        )
    if method is not None and not isinstance(method, str):
        raise MixedGLMError(f"method must be a string, one of {', '.join(METHODS)}")
    kind = method.strip().lower() if method else None
    if kind is not None and kind not in METHODS:
        raise MixedGLMError(
            f"unknown integration method '{method}': use one of {', '.join(METHODS)}"
        )
    if levels:
        _check_level_minimum(kind or "mvaghermite", levels)
    curv = (curvature or "observed").strip().lower() if isinstance(curvature, str | None) else ""
    if curv not in CURVATURES:
        raise MixedGLMError(f"curvature must be 'observed' or 'fisher', not {curvature!r}")
    if kind == "laplace":
        if points not in (None, 1):
            raise MixedGLMError(
                f"method='laplace' uses one point per random effect; nagq={points} conflicts "
                "with it (drop nagq, or choose mvaghermite or mcaghermite)"
            )
        points = 1
    elif points == 1:
        if kind is not None:
            raise MixedGLMError(
                f"nagq=1 is the Laplace approximation, not {kind}: use method='laplace' (or "
                "nagq of 2 or more)"
            )
        kind = "laplace"
    kind = kind or "mvaghermite"
    points = points or DEFAULT_NAGQ
    if kind == "mvaghermite" and points == 2:
        raise MixedGLMError(
            "mvaghermite needs at least 3 points per random effect (with 2 points the "
            "mean-variance grid's scale is not determined): use nagq >= 3, or "
            "method='mcaghermite' with nagq=2"
        )
    if curv == "fisher":
        if kind == "mvaghermite":
            raise MixedGLMError(
                "curvature='fisher' is for mode-curvature grids: use method='mcaghermite' or "
                "'laplace'"
            )
        if not supports_fisher:
            raise MixedGLMError("curvature='fisher' is for binomial and Poisson models")
    return IntegrationRule(kind, points, curv, levels=levels)
