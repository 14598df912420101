"""newton_maximize on functions whose maxima are known: a concave quadratic (one step), a
smooth concave function (quadratic convergence), step halving, a start where the Hessian is
not negative definite, the iteration log, non-convergence and a non-finite start."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mixedglm.optim import Evaluation, newton_maximize
from mixedglm.optim.newton import IterationRecord, format_loglik
from optim_objectives import Counted, logistic_loglik, quadratic


def test_a_concave_quadratic_is_solved_in_one_step():
    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    b = np.array([1.0, -2.0])
    objective = quadratic(A, b)
    x, ev, opt = newton_maximize(objective, np.array([10.0, -7.0]))
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-12)
    assert opt.converged and opt.message == "converged"
    assert opt.iterations == 1
    assert [r.iteration for r in opt.history] == [0, 1]
    assert opt.loglik == ev.loglik == pytest.approx(0.5 * b @ np.linalg.solve(A, b), rel=1e-12)
    np.testing.assert_allclose(ev.gradient, 0.0, atol=1e-12)
    np.testing.assert_allclose(ev.hessian, -A)
    assert opt.max_abs_gradient < 1e-12
    assert opt.evaluations == len(objective.calls) == 2


def test_a_smooth_concave_function_converges_quadratically():
    objective = logistic_loglik()
    x, ev, opt = newton_maximize(objective, np.zeros(3))
    assert opt.converged and opt.scaled_gradient < 1e-9
    np.testing.assert_allclose(ev.gradient, 0.0, atol=1e-6)
    # the maximum: no coordinate move increases the log-likelihood
    for j in range(3):
        for h in (1e-4, -1e-4):
            step = np.zeros(3)
            step[j] = h
            assert objective.f(x + step) < ev.loglik
    # quadratic convergence: the log-likelihood's distance to the maximum roughly squares
    gaps = [ev.loglik - r.loglik for r in opt.history[:-1]]
    assert all(b < a for a, b in itertools.pairwise(gaps))
    assert opt.iterations <= 7
    assert all(r.note == "" for r in opt.history)


def test_gtol_decides_when_to_stop():
    loose = newton_maximize(logistic_loglik(), np.zeros(3), gtol=1e-2)[2]
    tight = newton_maximize(logistic_loglik(), np.zeros(3), gtol=1e-14)[2]
    assert loose.converged and tight.converged
    assert loose.scaled_gradient < 1e-2 and tight.scaled_gradient < 1e-14
    assert loose.iterations < tight.iterations


def test_a_step_that_overshoots_is_halved():
    # f(x) = -sqrt(1 + x^2): concave, maximum at 0; from x = 2 the Newton step goes to
    # x - x(1 + x^2) = -8, where f is lower, so it is halved until it increases f.
    objective = Counted(
        lambda x: -np.sqrt(1 + x[0] ** 2),
        lambda x: np.array([-x[0] / np.sqrt(1 + x[0] ** 2)]),
        lambda x: np.array([[-((1 + x[0] ** 2) ** -1.5)]]),
    )
    lines: list[str] = []
    x, _ev, opt = newton_maximize(objective, np.array([2.0]), log=lines.append)
    assert opt.converged
    assert abs(x[0]) < 1e-6
    assert opt.history[1].note == "(backed up)"
    assert lines[1].endswith("(backed up)")
    # the first trial points: the full step, then halves of it
    trials = [c[0][0] for c in objective.calls[1:4]]
    np.testing.assert_allclose(trials, [-8.0, -3.0, -0.5])


def test_where_the_hessian_is_not_negative_definite_the_step_still_goes_uphill():
    # f(x, y) = -x^4 + x^2 - y^2 has maxima at x = +-1/sqrt(2), y = 0; at x = 0.1 the
    # Hessian in x is positive (2 - 12 x^2 > 0): "not concave"
    objective = Counted(
        lambda v: -(v[0] ** 4) + v[0] ** 2 - v[1] ** 2,
        lambda v: np.array([-4 * v[0] ** 3 + 2 * v[0], -2 * v[1]]),
        lambda v: np.diag([-12 * v[0] ** 2 + 2, -2.0]),
    )
    x, ev, opt = newton_maximize(objective, np.array([0.1, 0.5]), gtol=1e-16)
    assert opt.history[0].note == "(not concave)"
    assert opt.history[0].format().endswith("(not concave)")
    assert opt.converged
    np.testing.assert_allclose(x, [1 / np.sqrt(2), 0.0], atol=1e-8)
    assert ev.loglik == pytest.approx(0.25, abs=1e-14)
    lls = [r.loglik for r in opt.history]
    assert all(b >= a for a, b in itertools.pairwise(lls))


def test_a_saddle_point_is_never_declared_converged():
    # f = x^2 - y^2 at its saddle point: the gradient is zero but the Hessian indefinite
    objective = Counted(
        lambda v: v[0] ** 2 - v[1] ** 2,
        lambda v: np.array([2 * v[0], -2 * v[1]]),
        lambda v: np.diag([2.0, -2.0]),
    )
    _, _, opt = newton_maximize(objective, np.array([0.0, 0.0]), maxiter=5)
    assert not opt.converged
    assert opt.message == "maximum number of iterations reached"
    assert [r.note for r in opt.history] == ["(not concave)"] * 6


def test_non_convergence_is_reported_not_hidden():
    # f = log(x) - 1e-3 x has its maximum at x = 1000; 2 iterations from x = 1 cannot reach it
    objective = Counted(
        lambda x: np.log(x[0]) - 1e-3 * x[0],
        lambda x: np.array([1 / x[0] - 1e-3]),
        lambda x: np.array([[-1 / x[0] ** 2]]),
    )
    x, _, opt = newton_maximize(objective, np.array([1.0]), maxiter=2)
    assert not opt.converged
    assert opt.message == "maximum number of iterations reached"
    assert opt.iterations == 2
    assert len(opt.history) == 3
    assert opt.scaled_gradient > 1e-9
    assert x[0] < 1000
    full = newton_maximize(objective, np.array([1.0]), gtol=1e-16)
    assert full[2].converged
    assert full[0][0] == pytest.approx(1000.0, rel=1e-8)


def test_a_start_with_a_non_finite_loglik_raises():
    objective = Counted(
        lambda x: np.log(x[0]), lambda x: np.array([1 / x[0]]), lambda x: np.array([[-1.0]])
    )
    with pytest.raises(FloatingPointError, match="not finite at the starting values"):
        with np.errstate(divide="ignore", invalid="ignore"):
            newton_maximize(objective, np.array([-1.0]))


def test_the_iteration_log_is_statas():
    A = np.eye(2)
    lines: list[str] = []
    newton_maximize(quadratic(A, np.array([1.0, 1.0])), np.zeros(2), log=lines.append)
    assert lines == ["Iteration 0:   log likelihood = 0", "Iteration 1:   log likelihood = 1"]


def test_iteration_records_format_like_stata():
    assert IterationRecord(0, -1234.56789012).format() == (
        "Iteration 0:   log likelihood = -1234.5679"
    )
    assert IterationRecord(12, -5.0, "(backed up)").format() == (
        "Iteration 12:  log likelihood = -5  (backed up)"
    )
    assert format_loglik(-209470.8612345) == "-209470.86"
    assert format_loglik(float("-inf")) == "-inf"


def test_trust_converges_to_the_zero_of_a_slightly_inexact_gradient():
    """A gradient off by a small term (nested mcaghermite's fixed-grid score): the
    step-halving test of the log-likelihood stalls near its zero; below ``trust`` full steps
    reach it."""

    def objective(x: np.ndarray, order: int) -> Evaluation:
        value = -float(np.sum((x - 1.0) ** 2 + (x - 1.0) ** 4))
        if order == 0:
            return Evaluation(value)
        r = x - 1.0 - 1e-3  # the gradient's zero is 1e-3 off the maximum
        return Evaluation(value, -2 * r - 4 * r**3, np.diag(-2 - 12 * r**2))

    x0 = np.array([1.0, 1.0])  # at the maximum: every step along the gradient goes down
    _, _, stalled = newton_maximize(objective, x0)
    x, _, opt = newton_maximize(objective, x0, trust=1e-2)
    assert stalled.message != "converged"
    assert opt.converged and opt.message == "converged"
    np.testing.assert_allclose(x, 1.001, atol=1e-9)


def test_last_step_skips_the_derivatives_that_would_only_confirm_convergence():
    """A Hessian off by 5% (nested quadrature's fixed-grid one): the scaled gradient
    contracts by about 2.5e-3 a step. With ``last_step`` the step that the contraction
    predicts to converge is taken with its log-likelihood only: the same maximiser and
    log-likelihood, one order-2 evaluation fewer, the last an order-0 one."""

    def inexact() -> Counted:
        true = logistic_loglik()
        return Counted(true.f, true.grad, lambda b: 1.05 * true.hess(b))

    plain = inexact()
    x_plain, ev_plain, opt_plain = newton_maximize(plain, np.zeros(3))
    last = inexact()
    x, ev, opt = newton_maximize(last, np.zeros(3), last_step=True)
    assert opt_plain.converged and opt.converged and opt.message == "converged"
    np.testing.assert_allclose(x, x_plain, rtol=1e-12)
    assert ev.loglik == ev_plain.loglik
    assert opt.iterations == opt_plain.iterations
    orders, plain_orders = [o for _, o in last.calls], [o for _, o in plain.calls]
    assert orders[-1] == 0 and orders.count(2) == plain_orders.count(2) - 1
    # the previous iterate's Hessian; the gradient the quadratic model predicts
    np.testing.assert_allclose(ev.hessian, ev_plain.hessian, rtol=1e-3)
    np.testing.assert_allclose(ev.gradient, 0.0, atol=1e-12)
    assert opt.scaled_gradient < 1e-9


def test_with_trial_order_0_a_rejected_step_never_gets_a_hessian():
    # as above: from x = 2 the full step to -8 is rejected, then halved; with trial_order=0
    # every trial point is evaluated at order 0 and only the accepted one at order 2
    objective = Counted(
        lambda x: -np.sqrt(1 + x[0] ** 2),
        lambda x: np.array([-x[0] / np.sqrt(1 + x[0] ** 2)]),
        lambda x: np.array([[-((1 + x[0] ** 2) ** -1.5)]]),
    )
    x, _ev, opt = newton_maximize(objective, np.array([2.0]), trial_order=0)
    assert opt.converged and abs(x[0]) < 1e-6
    assert [c[1] for c in objective.calls[1:5]] == [0, 0, 0, 2]
    np.testing.assert_allclose([c[0][0] for c in objective.calls[1:5]], [-8.0, -3.0, -0.5, -0.5])
    hessian_points = [c[0][0] for c in objective.calls if c[1] == 2]
    assert -8.0 not in hessian_points and -3.0 not in hessian_points
