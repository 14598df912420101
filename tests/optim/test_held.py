"""Newton steps on a held, secant-updated Hessian (:mod:`mixedglm.optim.held`): the BFGS
update's secant condition, the same maximum as Newton's with fewer Hessians, and a fresh
Hessian while the optimum is far."""

from __future__ import annotations

import numpy as np
import pytest

from mixedglm.optim import newton_maximize
from mixedglm.optim.held import HeldHessianSteps, bfgs_update, scaled_gradient
from optim_objectives import logistic_loglik


def test_the_bfgs_update_meets_the_secant_condition():
    rng = np.random.default_rng(3)
    m = rng.normal(size=(4, 4))
    hessian = -(m @ m.T + 4 * np.eye(4))
    step = rng.normal(size=4)
    change = -(m @ m.T + 2 * np.eye(4)) @ step  # a concave function's gradient change
    updated = bfgs_update(hessian, step, change)
    np.testing.assert_allclose(updated @ step, change, rtol=1e-10)
    np.testing.assert_allclose(updated, updated.T, atol=1e-12)
    assert np.isfinite(scaled_gradient(np.ones(4), updated))  # still negative definite
    # no curvature along the step (the gradient grows along it): left as it was
    np.testing.assert_array_equal(bfgs_update(hessian, step, step), hessian)


def test_held_steps_reach_newtons_maximum_with_fewer_hessians():
    plain = logistic_loglik()
    x_plain, _, opt_plain = newton_maximize(plain, np.zeros(3), gtol=1e-14)
    counted = logistic_loglik()
    steps = HeldHessianSteps(counted, below=1.0)
    x, ev, opt = newton_maximize(steps, np.zeros(3), gtol=1e-14, trial_order=0)
    assert opt.converged and opt_plain.converged
    np.testing.assert_allclose(x, x_plain, rtol=1e-7)
    assert ev.loglik == pytest.approx(opt_plain.loglik, abs=1e-10)
    assert steps.held > 0
    # one order-2 request per accepted point: held (a gradient only) or a fresh Hessian
    hessians = sum(1 for _, order in counted.calls if order == 2)
    assert hessians == opt.iterations + 1 - steps.held
    assert hessians < sum(1 for _, order in plain.calls if order == 2)


def test_far_from_the_optimum_the_hessian_is_computed_afresh():
    counted = logistic_loglik()
    steps = HeldHessianSteps(counted, below=0.0)  # never held
    x, _, opt = newton_maximize(steps, np.zeros(3), gtol=1e-14)
    assert opt.converged and steps.held == 0
    np.testing.assert_allclose(x, newton_maximize(logistic_loglik(), np.zeros(3), gtol=1e-14)[0])
