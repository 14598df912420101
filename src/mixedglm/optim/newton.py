"""Newton-Raphson with step halving, as Stata's ``ml`` maximises.

The objective is any function ``f(x, order)`` returning an :class:`Evaluation` with the
log-likelihood and, for ``order >= 1`` / ``order == 2``, its gradient and Hessian. The
optimiser knows nothing about models. Where the Hessian is not negative definite the step is
taken on the eigenvalue-modified Hessian ("not concave", as Stata says); where a full step
does not increase the log-likelihood it is halved ("backed up"); where no Newton step helps,
a steepest-ascent line search is tried before giving up. Convergence is declared on the
scaled gradient ``g' (-H)^-1 g``, which is twice the increase a Newton step still promises.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mixedglm.errors import ConvergenceWarning, NotFiniteError

LAST_STEP_MAX = 1e-4  # scaled gradient below which a last step may skip its derivatives


@dataclass(frozen=True)
class Evaluation:
    """The log-likelihood at a point and, when asked for, its gradient and Hessian."""

    loglik: float
    gradient: np.ndarray | None = None
    hessian: np.ndarray | None = None


Objective = Callable[[np.ndarray, int], Evaluation]


@dataclass(frozen=True)
class IterationRecord:
    """One line of the iteration log."""

    iteration: int
    loglik: float
    note: str = ""

    def format(self) -> str:
        """The line as Stata prints it: ``Iteration 0:   log likelihood = -1234.5678``."""
        head = f"Iteration {self.iteration}:"
        line = f"{head:<14} log likelihood = {format_loglik(self.loglik)}"
        return f"{line}  {self.note}" if self.note else line


@dataclass(frozen=True)
class OptSummary:
    """A record of the maximisation: what was done and how it ended."""

    converged: bool
    iterations: int
    loglik: float
    scaled_gradient: float
    max_abs_gradient: float
    message: str
    history: tuple[IterationRecord, ...]
    evaluations: int

    def warn_if_not_converged(self, stacklevel: int = 2) -> None:
        """A :class:`~mixedglm.errors.ConvergenceWarning` when the maximisation stopped
        before its criterion was met (``stacklevel`` as :func:`warnings.warn`'s, counted from
        the caller)."""
        if not self.converged:
            warnings.warn(
                ConvergenceWarning(
                    f"convergence not achieved after {self.iterations} iterations "
                    f"(max |gradient| = {self.max_abs_gradient:.3g}, {self.message})"
                ),
                stacklevel=stacklevel + 1,
            )


def format_loglik(value: float) -> str:
    """Eight significant digits, as Stata's iteration log and headers show them."""
    return f"{value:.8g}" if np.isfinite(value) else str(value)


def _newton_direction(gradient: np.ndarray, hessian: np.ndarray) -> tuple[np.ndarray, bool]:
    """Solve ``(-H) d = g``; where ``-H`` is not positive definite, use |eigenvalues|."""
    neg_h = -0.5 * (hessian + hessian.T)
    try:
        chol = np.linalg.cholesky(neg_h)
        direction = np.linalg.solve(chol.T, np.linalg.solve(chol, gradient))
        return direction, True
    except np.linalg.LinAlgError:
        pass
    eigval, eigvec = np.linalg.eigh(neg_h)
    floor = max(1e-8 * np.max(np.abs(eigval)), 1e-12)
    modified = np.maximum(np.abs(eigval), floor)
    return eigvec @ ((eigvec.T @ gradient) / modified), False


def newton_maximize(
    objective: Objective,
    x0: np.ndarray,
    *,
    gtol: float = 1e-9,
    maxiter: int = 100,
    max_halvings: int = 40,
    log: Callable[[str], None] | None = None,
    trust: float = 0.0,
    last_step: bool = False,
    trial_order: int = 2,
) -> tuple[np.ndarray, Evaluation, OptSummary]:
    """Maximise ``objective`` from ``x0``.

    Returns the maximiser, the evaluation (with gradient and Hessian) there, and an
    :class:`OptSummary`. Convergence: ``g' (-H)^-1 g < gtol`` with a negative definite
    Hessian. The log-likelihood at every iterate is passed to ``log`` as a Stata line.

    ``trust``: below this scaled gradient (with a concave Hessian) full Newton steps are
    taken that may lower the log-likelihood by up to ``trust``, for objectives
    whose gradient is exact only up to terms of that size (nested mode-curvature
    quadrature's fixed-grid score): the iteration then converges to the gradient's zero,
    where a step-halving test of the log-likelihood alone would stall.

    ``last_step``: when the last step's contraction of the scaled gradient, repeated,
    predicts it below ``gtol`` after the next full step (a concave Hessian, a scaled gradient
    below ``LAST_STEP_MAX``), that step is taken with its log-likelihood only (order 0) and
    ends the maximisation if the log-likelihood did not decrease: for objectives whose
    derivatives cost several times their value (nested quadrature), the evaluation that
    would only confirm convergence. The returned evaluation then holds the log-likelihood at
    the maximiser, the previous iterate's Hessian and the gradient the quadratic model
    predicts (zero to rounding).

    ``trial_order``: the order of the evaluation of a full Newton step before it is
    accepted. 2 (the default) serves the next iteration at once; 0 asks for the Hessian
    only at accepted points (one more evaluation per step, but no Hessian of a rejected
    step: for objectives whose Hessian costs many gradients).
    """
    x = np.array(x0, dtype=float)
    evaluation = objective(x, 2)
    n_eval = 1
    if not np.isfinite(evaluation.loglik):
        raise NotFiniteError(
            "the log likelihood is not finite at the starting values: rescale covariates "
            "with very large or very small values (or simplify the model)"
        )
    history: list[IterationRecord] = []
    converged = False
    message = "maximum number of iterations reached"
    scaled = np.inf
    arrival_note = ""
    iteration = 0
    previous = np.inf
    for iteration in range(maxiter + 1):
        gradient, hessian = evaluation.gradient, evaluation.hessian
        assert gradient is not None and hessian is not None
        direction, concave = _newton_direction(gradient, hessian)
        scaled = float(gradient @ direction)
        note = "(not concave)" if not concave else arrival_note
        record = IterationRecord(iteration, evaluation.loglik, note)
        history.append(record)
        if log is not None:
            log(record.format())
        if concave and scaled < gtol:
            converged = True
            message = "converged"
            break
        if iteration == maxiter:
            break
        predicted = scaled * (scaled / previous) if previous > 0 else np.inf
        previous = scaled
        if last_step and concave and scaled < LAST_STEP_MAX and predicted < gtol:
            trial = objective(x + direction, 0)
            n_eval += 1
            slack = 1e-12 * max(1.0, abs(evaluation.loglik))
            if np.isfinite(trial.loglik) and trial.loglik >= evaluation.loglik - slack:
                x = x + direction
                evaluation = Evaluation(trial.loglik, gradient + hessian @ direction, hessian)
                iteration, scaled, converged, message = iteration + 1, predicted, True, "converged"
                history.append(IterationRecord(iteration, trial.loglik))
                if log is not None:
                    log(history[-1].format())
                break
        if concave and scaled < trust:
            trial = objective(x + direction, 2)
            n_eval += 1
            if np.isfinite(trial.loglik) and trial.loglik >= evaluation.loglik - trust:
                x, evaluation, arrival_note = x + direction, trial, ""
                continue
        new_x, new_eval, arrival_note, evals = _line_search(
            objective, x, evaluation, direction, gradient, max_halvings, trial_order
        )
        n_eval += evals
        if new_eval is None:
            # Neither the Newton nor the steepest-ascent direction increases the
            # log-likelihood: the optimum is within rounding of x.
            converged = concave and scaled < 1e-5
            message = (
                "converged (no further increase possible)"
                if converged
                else "could not find an uphill step"
            )
            break
        x, evaluation = new_x, new_eval
    summary = OptSummary(
        converged=converged,
        iterations=iteration,
        loglik=float(evaluation.loglik),
        scaled_gradient=float(scaled),
        max_abs_gradient=float(np.max(np.abs(np.asarray(evaluation.gradient)))) if x.size else 0.0,
        message=message,
        history=tuple(history),
        evaluations=n_eval,
    )
    return x, evaluation, summary


def _line_search(
    objective: Objective,
    x: np.ndarray,
    current: Evaluation,
    direction: np.ndarray,
    gradient: np.ndarray,
    max_halvings: int,
    trial_order: int = 2,
) -> tuple[np.ndarray, Evaluation | None, str, int]:
    """Step halving along the Newton direction, then along the gradient."""
    base = current.loglik
    slack = 1e-12 * max(1.0, abs(base))
    evals = 0
    for candidate in (direction, _ascent_direction(gradient, direction)):
        step = 1.0
        for halving in range(max_halvings + 1):
            trial_x = x + step * candidate
            order = trial_order if halving == 0 else 0
            trial = objective(trial_x, order)
            evals += 1
            if np.isfinite(trial.loglik) and trial.loglik >= base - slack:
                if trial.loglik < base + slack and halving > 0:
                    break  # only rounding-level changes left along this direction
                if order != 2:
                    trial = objective(trial_x, 2)
                    evals += 1
                return trial_x, trial, "(backed up)" if halving > 0 else "", evals
            step *= 0.5
    return x, None, "", evals


def _ascent_direction(gradient: np.ndarray, newton: np.ndarray) -> np.ndarray:
    """The gradient, scaled to the length of the Newton step (a safe fallback)."""
    norm = np.linalg.norm(gradient)
    if norm == 0:
        return gradient
    return gradient * (np.linalg.norm(newton) / norm)
