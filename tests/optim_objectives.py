"""Objectives with known maxima for the optimiser's tests (``tests/optim``)."""

from __future__ import annotations

import numpy as np

from mixedglm.optim import Evaluation


class Counted:
    """An objective that records the points and orders it was asked for."""

    def __init__(self, f, grad, hess):
        self.f, self.grad, self.hess = f, grad, hess
        self.calls: list[tuple[np.ndarray, int]] = []

    def __call__(self, x: np.ndarray, order: int) -> Evaluation:
        self.calls.append((x.copy(), order))
        value = float(self.f(x))
        if order == 0:
            return Evaluation(value)
        return Evaluation(value, self.grad(x), self.hess(x) if order == 2 else None)


def quadratic(A: np.ndarray, b: np.ndarray) -> Counted:
    """``f(x) = -0.5 x'Ax + b'x`` (A positive definite): maximum at ``A^-1 b``."""
    return Counted(lambda x: -0.5 * x @ A @ x + b @ x, lambda x: b - A @ x, lambda x: -A)


def logistic_loglik(seed: int = 0):
    """A logistic regression log-likelihood (concave, not quadratic) on simulated data."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(400), rng.normal(size=(400, 2))])
    y = rng.binomial(1, 1 / (1 + np.exp(-(X @ [0.3, -0.8, 0.5]))))

    def f(b):
        eta = X @ b
        return float(y @ eta - np.logaddexp(0, eta).sum())

    def grad(b):
        return X.T @ (y - 1 / (1 + np.exp(-(X @ b))))

    def hess(b):
        mu = 1 / (1 + np.exp(-(X @ b)))
        return -(X * (mu * (1 - mu))[:, None]).T @ X

    return Counted(f, grad, hess)
