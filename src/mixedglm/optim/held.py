"""Newton steps on a held, secant-updated Hessian once the optimum is near.

The joint Laplace engine's Hessian for Newton's steps costs one exact gradient per
parameter (forward differences), its gradient one. Near the optimum the Hessian hardly
changes from one step to the next, so there the last differenced Hessian steers the steps,
corrected after each step by the BFGS update from the step and the change of the exact
gradient (the curvature along the directions Newton actually moves in): each step then
costs one gradient. Measured on the crossed benchmark (6 parameters): the held Hessian
alone converged linearly (8 more steps, the log-likelihood's increase shrinking 30-fold per
step); with the updates in 3. The steps are held once the scaled gradient
``g' (-H)^-1 g`` (twice the increase a Newton step promises) is below :data:`HOLD_BELOW`;
the covariance of the estimates never comes from a held Hessian (the caller computes the
exact one at the optimum and checks the convergence with it,
:func:`mixedglm.models.multilevel.fit_multilevel`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mixedglm.optim.newton import Evaluation

HOLD_BELOW = 0.1


def scaled_gradient(gradient: np.ndarray, hessian: np.ndarray) -> float:
    """``g' (-H)^-1 g``; ``inf`` where ``-H`` is not positive definite."""
    try:
        chol = np.linalg.cholesky(-0.5 * (hessian + hessian.T))
    except np.linalg.LinAlgError:
        return np.inf
    half = np.linalg.solve(chol, gradient)
    return float(half @ half)


def bfgs_update(hessian: np.ndarray, step: np.ndarray, change: np.ndarray) -> np.ndarray:
    """The BFGS update of a negative definite Hessian from a step and the gradient's
    change over it; unchanged where the change shows no curvature along the step."""
    b = -hessian
    y = -change
    ys = float(y @ step)
    bs = b @ step
    sbs = float(step @ bs)
    if not (ys > 1e-12 * np.linalg.norm(y) * np.linalg.norm(step) and sbs > 0.0):
        return hessian
    return -(b - np.outer(bs, bs) / sbs + np.outer(y, y) / ys)


class HeldHessianSteps:
    """``objective`` whose order-2 evaluations return the last computed Hessian (updated by
    :func:`bfgs_update` from each evaluation to the next) while the scaled gradient on it
    is below ``below``: then only the gradient is evaluated. Orders 0 and 1 pass through.
    ``held`` counts the evaluations that held it."""

    def __init__(
        self, objective: Callable[[np.ndarray, int], Evaluation], below: float = HOLD_BELOW
    ) -> None:
        self.objective = objective
        self.below = below
        self.hessian: np.ndarray | None = None
        self.held = 0
        self._point: tuple[np.ndarray, np.ndarray] | None = None  # the last (x, gradient)

    def __call__(self, params: np.ndarray, order: int) -> Evaluation:
        if order < 2:
            return self.objective(params, order)
        if self.hessian is not None and self._point is not None:
            ev = self.objective(params, 1)
            assert ev.gradient is not None
            if np.isfinite(ev.loglik):
                x0, g0 = self._point
                self.hessian = bfgs_update(self.hessian, params - x0, ev.gradient - g0)
                self._point = (np.array(params, dtype=float), ev.gradient)
                if scaled_gradient(ev.gradient, self.hessian) < self.below:
                    self.held += 1
                    return Evaluation(ev.loglik, ev.gradient, self.hessian)
        ev = self.objective(params, 2)
        assert ev.gradient is not None and ev.hessian is not None
        concave = np.isfinite(scaled_gradient(np.zeros(params.size), ev.hessian))
        self.hessian = ev.hessian if concave else None
        self._point = (np.array(params, dtype=float), ev.gradient)
        return ev
