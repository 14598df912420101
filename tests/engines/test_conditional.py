"""Conditional logit and Poisson likelihoods: brute force, high precision, R's survival::clogit,
and the Poisson dummy-variable equivalence."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln, logsumexp

from mixedglm.engines import parallel
from mixedglm.engines.conditional import (
    clogit_evaluate,
    clogit_evaluate_reference,
    cpoisson_evaluate,
    cpoisson_evaluate_reference,
)
from mixedglm.optim import Evaluation, newton_maximize

REFERENCE = Path(__file__).resolve().parents[1] / "reference"

CLOGIT = [clogit_evaluate, clogit_evaluate_reference]
CPOISSON = [cpoisson_evaluate, cpoisson_evaluate_reference]


def random_panel(rng, n_groups, min_size, max_size, p=3, scale=1.0):
    sizes = rng.integers(min_size, max_size + 1, size=n_groups)
    starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    X = rng.normal(size=(starts[-1], p)) * scale + rng.normal(size=p)
    y = (rng.random(starts[-1]) < rng.uniform(0.1, 0.9, n_groups).repeat(sizes)).astype(float)
    return X, y, starts


def brute_force_clogit(beta, X, y, starts):
    """Sum over all subsets of size k: loglik, score and minus the covariance of T."""
    p = X.shape[1]
    ll, grad, hess = 0.0, np.zeros(p), np.zeros((p, p))
    for lo, hi in itertools.pairwise(starts):
        x, yy = X[lo:hi], y[lo:hi]
        n, k = hi - lo, int(yy.sum())
        if k in (0, n):
            continue
        subsets = [list(s) for s in itertools.combinations(range(n), k)]
        T = np.array([x[s].sum(axis=0) for s in subsets])
        le = T @ beta
        lse = logsumexp(le)
        w = np.exp(le - lse)
        mean = w @ T
        ll += x[yy == 1].sum(axis=0) @ beta - lse
        grad += x[yy == 1].sum(axis=0) - mean
        hess -= ((T - mean).T * w) @ (T - mean)
    return ll, grad, hess


def numeric_derivatives(f, beta, h=1e-5):
    """Central differences of loglik (gradient) and of the analytic gradient (Hessian)."""
    p = beta.size
    grad, hess = np.zeros(p), np.zeros((p, p))
    for j in range(p):
        e = np.zeros(p)
        e[j] = h
        grad[j] = (f(beta + e, 0).loglik - f(beta - e, 0).loglik) / (2 * h)
        hess[:, j] = (f(beta + e, 1).gradient - f(beta - e, 1).gradient) / (2 * h)
    return grad, hess


def decimal_clogit(beta, X, y, prec=60, derivatives=2):
    """One group's loglik, score and Hessian by the plain recursion on e_k(exp(eta)) and its
    derivatives, in ``prec``-digit decimal arithmetic (no overflow, no cancellation)."""
    with localcontext() as ctx:
        ctx.prec = prec
        n, p = X.shape
        k = int(y.sum())
        x = [[Decimal(float(v)) for v in row] for row in X]
        b = [Decimal(float(v)) for v in beta]
        eta = [sum((xi[j] * b[j] for j in range(p)), Decimal(0)) for xi in x]
        w = [e.exp() for e in eta]
        zero_v = [Decimal(0)] * p
        B = [Decimal(1)] + [Decimal(0)] * k
        dB = [list(zero_v) for _ in range(k + 1)]
        d2B = [[list(zero_v) for _ in range(p)] for _ in range(k + 1)]
        for i in range(n):
            xi, wi = x[i], w[i]
            for m in range(min(i + 1, k), 0, -1):
                bm1, dm1, d2m1 = B[m - 1], dB[m - 1], d2B[m - 1]
                if derivatives == 2:
                    for u in range(p):
                        for v in range(p):
                            d2B[m][u][v] += wi * (
                                xi[u] * xi[v] * bm1 + xi[u] * dm1[v] + dm1[u] * xi[v] + d2m1[u][v]
                            )
                if derivatives >= 1:
                    for u in range(p):
                        dB[m][u] += wi * (xi[u] * bm1 + dm1[u])
                B[m] += wi * bm1
        events = [i for i in range(n) if y[i] == 1]
        ll = sum((eta[i] for i in events), Decimal(0)) - B[k].ln()
        mean = [dB[k][u] / B[k] for u in range(p)]
        grad = [sum((x[i][u] for i in events), Decimal(0)) - mean[u] for u in range(p)]
        hess = [[mean[u] * mean[v] - d2B[k][u][v] / B[k] for v in range(p)] for u in range(p)]
        return (
            float(ll),
            np.array([float(g) for g in grad]),
            np.array([[float(h) for h in row] for row in hess]),
        )


# ---------------------------------------------------------------------------------------------
# conditional logit


@pytest.mark.parametrize("evaluate", CLOGIT)
def test_clogit_equals_brute_force_enumeration(evaluate):
    rng = np.random.default_rng(20240501)
    X, y, starts = random_panel(rng, n_groups=60, min_size=1, max_size=10, scale=1.5)
    beta = np.array([0.7, -1.3, 0.4])
    ll, grad, hess = brute_force_clogit(beta, X, y, starts)
    ev = evaluate(beta, X, y, starts, 2)
    assert ev.loglik == pytest.approx(ll, rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(ev.gradient, grad, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ev.hessian, hess, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ev.hessian, ev.hessian.T, rtol=1e-14)


@pytest.mark.parametrize("evaluate", CLOGIT)
def test_clogit_each_group_size_and_event_count(evaluate):
    """Every (n, k) with n <= 8, including k = 1 and k = n - 1 (softmax after the flip)."""
    rng = np.random.default_rng(7)
    beta = np.array([1.1, -0.6])
    for n in range(2, 9):
        for k in range(1, n):
            X = rng.normal(size=(n, 2)) * 2.0
            y = np.zeros(n)
            y[rng.choice(n, k, replace=False)] = 1.0
            starts = np.array([0, n])
            ll, grad, hess = brute_force_clogit(beta, X, y, starts)
            ev = evaluate(beta, X, y, starts, 2)
            assert ev.loglik == pytest.approx(ll, rel=1e-10, abs=1e-12)
            np.testing.assert_allclose(ev.gradient, grad, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(ev.hessian, hess, rtol=1e-10, atol=1e-12)


def test_clogit_derivatives_match_finite_differences():
    rng = np.random.default_rng(3)
    X, y, starts = random_panel(rng, n_groups=40, min_size=2, max_size=40)
    beta = np.array([0.3, -0.2, 0.5])
    ev = clogit_evaluate(beta, X, y, starts, 2)
    grad, hess = numeric_derivatives(lambda b, o: clogit_evaluate(b, X, y, starts, o), beta)
    np.testing.assert_allclose(ev.gradient, grad, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ev.hessian, hess, rtol=1e-6, atol=1e-6)


def test_clogit_orders_and_offset():
    rng = np.random.default_rng(4)
    X, y, starts = random_panel(rng, n_groups=25, min_size=2, max_size=12)
    beta = np.array([0.3, -0.2, 0.5])
    full = clogit_evaluate(beta, X, y, starts, 2)
    e0, e1 = clogit_evaluate(beta, X, y, starts, 0), clogit_evaluate(beta, X, y, starts, 1)
    assert e0.gradient is None and e0.hessian is None and e1.hessian is None
    assert e0.loglik == pytest.approx(full.loglik, rel=1e-14)
    np.testing.assert_allclose(e1.gradient, full.gradient, rtol=1e-14)
    # an offset is a covariate with coefficient fixed at 1
    off = rng.normal(size=y.size)
    with_off = clogit_evaluate(beta, X, y, starts, 2, offset=off)
    Xo = np.column_stack([X, off])
    extended = clogit_evaluate(np.append(beta, 1.0), Xo, y, starts, 2)
    assert with_off.loglik == pytest.approx(extended.loglik, rel=1e-13)
    np.testing.assert_allclose(with_off.gradient, extended.gradient[:3], rtol=1e-12, atol=1e-12)
    # groups without events or with only events contribute nothing
    y0 = y.copy()
    y0[starts[0] : starts[1]] = 1.0
    y0[starts[1] : starts[2]] = 0.0
    part = clogit_evaluate(beta, X[starts[2] :], y0[starts[2] :], starts[2:] - starts[2], 2)
    whole = clogit_evaluate(beta, X, y0, starts, 2)
    assert whole.loglik == pytest.approx(part.loglik, rel=1e-13)
    np.testing.assert_allclose(whole.hessian, part.hessian, rtol=1e-12)


def test_clogit_high_precision_overflow_prone_group():
    """150 rows, 70 events, |eta| up to ~ 60: e_70(exp(eta)) ~ exp(2000) overflows double."""
    rng = np.random.default_rng(11)
    n, k = 150, 70
    X = rng.normal(size=(n, 3)) * np.array([4.0, 2.0, 8.0])
    y = np.zeros(n)
    y[rng.choice(n, k, replace=False)] = 1.0
    beta = np.array([3.0, -5.0, 2.5])
    assert np.max(np.abs(X @ beta)) > 50
    ll, grad, hess = decimal_clogit(beta, X, y, prec=60, derivatives=2)
    for evaluate in CLOGIT:
        ev = evaluate(beta, X, y, np.array([0, n]), 2)
        assert ev.loglik == pytest.approx(ll, rel=1e-12)
        np.testing.assert_allclose(ev.gradient, grad, rtol=1e-9, atol=1e-9 * np.abs(grad).max())
        np.testing.assert_allclose(ev.hessian, hess, rtol=1e-9, atol=1e-9 * np.abs(hess).max())


@pytest.mark.slow
def test_clogit_group_of_683_rows_with_300_events():
    rng = np.random.default_rng(683)
    n, k = 683, 300
    X = rng.normal(size=(n, 3)) * np.array([3.0, 1.0, 5.0]) + np.array([10.0, 0.0, -4.0])
    y = np.zeros(n)
    y[rng.choice(n, k, replace=False)] = 1.0
    beta = np.array([4.0, -6.0, 3.0])
    starts = np.array([0, n])
    ev = clogit_evaluate(beta, X, y, starts, 2)
    assert np.isfinite(ev.loglik) and np.all(np.isfinite(ev.gradient))
    assert np.all(np.isfinite(ev.hessian))
    assert np.all(np.linalg.eigvalsh(ev.hessian) < 0)
    # against 60-digit decimal arithmetic
    ll, grad, hess = decimal_clogit(beta, X, y, prec=60, derivatives=2)
    assert ev.loglik == pytest.approx(ll, rel=1e-13)
    np.testing.assert_allclose(ev.gradient, grad, rtol=1e-11, atol=1e-12 * np.abs(grad).max())
    np.testing.assert_allclose(ev.hessian, hess, rtol=1e-11, atol=1e-12 * np.abs(hess).max())
    # events <-> non-events with beta -> -beta is the same likelihood
    flipped = clogit_evaluate(-beta, X, 1.0 - y, starts, 2)
    assert flipped.loglik == pytest.approx(ev.loglik, rel=1e-13)
    np.testing.assert_allclose(flipped.gradient, -ev.gradient, rtol=1e-10)
    np.testing.assert_allclose(flipped.hessian, ev.hessian, rtol=1e-10)
    # the NumPy reference and the Hessian's finite differences agree
    ref = clogit_evaluate_reference(beta, X, y, starts, 2)
    assert ref.loglik == pytest.approx(ev.loglik, rel=1e-13)
    np.testing.assert_allclose(ref.hessian, ev.hessian, rtol=1e-11, atol=1e-12 * np.abs(hess).max())
    _, hess_fd = numeric_derivatives(lambda b, o: clogit_evaluate(b, X, y, starts, o), beta, h=1e-6)
    np.testing.assert_allclose(ev.hessian, hess_fd, rtol=1e-5, atol=1e-5 * np.abs(hess_fd).max())


def test_clogit_many_groups_equals_sum_over_groups():
    """The parallel chunking adds up exactly what the groups contribute one by one."""
    rng = np.random.default_rng(5)
    X, y, starts = random_panel(rng, n_groups=300, min_size=1, max_size=30)
    beta = np.array([0.2, 0.1, -0.3])
    whole = clogit_evaluate(beta, X, y, starts, 2)
    ll, grad, hess = 0.0, np.zeros(3), np.zeros((3, 3))
    for lo, hi in itertools.pairwise(starts):
        ev = clogit_evaluate(beta, X[lo:hi], y[lo:hi], np.array([0, hi - lo]), 2)
        ll, grad, hess = ll + ev.loglik, grad + ev.gradient, hess + ev.hessian
    assert whole.loglik == pytest.approx(ll, rel=1e-12)
    np.testing.assert_allclose(whole.gradient, grad, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(whole.hessian, hess, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# against R's survival::clogit(method = "exact")


def fit_clogit(X, y, starts):
    def objective(beta, order):
        return clogit_evaluate(beta, X, y, starts, order)

    # gtol far below the default: R's estimates are within ~1e-9 of the optimum, and the
    # default stops ~1e-5 standard errors short of it
    beta, ev, summary = newton_maximize(objective, np.zeros(X.shape[1]), gtol=1e-16)
    assert summary.converged
    return beta, np.sqrt(np.diag(np.linalg.inv(-ev.hessian))), ev.loglik


def sorted_by(df, group):
    df = df.sort_values(group, kind="stable").reset_index(drop=True)
    codes = pd.factorize(df[group], sort=True)[0]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1], True]).astype(np.int64)
    return df, starts


def check_reference(name, beta, se, loglik):
    ref = json.loads((REFERENCE / f"{name}.json").read_text())
    np.testing.assert_allclose(beta, ref["fixef"]["estimate"], rtol=1e-6)
    np.testing.assert_allclose(se, ref["fixef"]["se"], rtol=1e-6)
    assert loglik == pytest.approx(ref["loglik"], rel=1e-6)


def test_clogit_matches_survival_simulated_panel():
    df, starts = sorted_by(pd.read_csv(REFERENCE / "data" / "sim_panel_logit.csv"), "id")
    X = np.ascontiguousarray(df[["x1", "x2", "x3"]].to_numpy(dtype=float))
    beta, se, loglik = fit_clogit(X, df["y"].to_numpy(dtype=float), starts)
    check_reference("simpanel_clogit_exact", beta, se, loglik)


def test_clogit_matches_survival_contraception():
    df, starts = sorted_by(pd.read_csv(REFERENCE / "data" / "contraception.csv"), "district")
    livch = df["livch"].astype(str)
    X = np.column_stack(
        [df["age"], df["age"] ** 2, df["urban"]] + [livch == v for v in ("1", "2", "3+")]
    ).astype(float)
    beta, se, loglik = fit_clogit(X, df["use"].to_numpy(dtype=float), starts)
    check_reference("contra_clogit_exact", beta, se, loglik)


# ---------------------------------------------------------------------------------------------
# conditional Poisson


def poisson_panel(rng, n_groups=40, p=3):
    sizes = rng.integers(2, 13, size=n_groups)
    starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    N = starts[-1]
    X = rng.normal(size=(N, p))
    offset = np.log(rng.uniform(0.5, 3.0, size=N))
    alpha = rng.normal(0.5, 0.7, size=n_groups).repeat(sizes)
    y = rng.poisson(np.exp(alpha + X @ np.array([0.4, -0.3, 0.2])[:p] + offset)).astype(float)
    return X, y, offset, starts


@pytest.mark.parametrize("evaluate", CPOISSON)
def test_cpoisson_loglik_by_definition(evaluate):
    rng = np.random.default_rng(8)
    X, y, offset, starts = poisson_panel(rng)
    y[starts[3] : starts[4]] = 0.0  # an all-zero group contributes nothing
    beta = np.array([0.1, 0.2, -0.3])
    eta = X @ beta + offset
    ll = 0.0
    for lo, hi in itertools.pairwise(starts):
        yg, eg = y[lo:hi], eta[lo:hi]
        ll += gammaln(yg.sum() + 1) - gammaln(yg + 1).sum() + yg @ (eg - logsumexp(eg))
    ev = evaluate(beta, X, y, offset, starts, 2)
    assert ev.loglik == pytest.approx(ll, rel=1e-12)
    grad, hess = numeric_derivatives(lambda b, o: evaluate(b, X, y, offset, starts, o), beta)
    np.testing.assert_allclose(ev.gradient, grad, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ev.hessian, hess, rtol=1e-6, atol=1e-6)


def test_cpoisson_kernel_equals_reference_and_orders():
    rng = np.random.default_rng(9)
    X, y, offset, starts = poisson_panel(rng, n_groups=200)
    beta = np.array([0.3, -0.1, 0.2])
    fast = cpoisson_evaluate(beta, X, y, offset, starts, 2)
    ref = cpoisson_evaluate_reference(beta, X, y, offset, starts, 2)
    assert fast.loglik == pytest.approx(ref.loglik, rel=1e-12)
    np.testing.assert_allclose(fast.gradient, ref.gradient, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fast.hessian, ref.hessian, rtol=1e-10, atol=1e-10)
    e0 = cpoisson_evaluate(beta, X, y, None, starts, 0)
    assert e0.gradient is None and e0.hessian is None and np.isfinite(e0.loglik)
    # large linear predictors do not overflow
    big = cpoisson_evaluate(beta * 400, X, y, offset, starts, 2)
    assert np.isfinite(big.loglik) and np.all(np.isfinite(big.hessian))


def test_cpoisson_equals_poisson_with_group_dummies():
    """Slopes and their SEs from the conditional likelihood equal those of a Poisson GLM
    with one intercept per group; the maximised log-likelihoods differ by
    sum_g [Y_g log Y_g - Y_g - lnGamma(Y_g + 1)]."""
    rng = np.random.default_rng(10)
    X, y, offset, starts = poisson_panel(rng, n_groups=40)
    sizes = np.diff(starts)
    totals = np.add.reduceat(y, starts[:-1])
    assert np.all(totals > 0)
    G, p = sizes.size, X.shape[1]
    D = np.repeat(np.eye(G), sizes, axis=0)
    Z = np.column_stack([X, D])

    def glm(theta, order):
        eta = Z @ theta + offset
        mu = np.exp(eta)
        ll = float(y @ eta - mu.sum() - gammaln(y + 1).sum())
        grad = Z.T @ (y - mu) if order >= 1 else None
        hess = -(Z.T * mu) @ Z if order == 2 else None
        return Evaluation(ll, grad, hess)

    theta0 = np.concatenate(
        [np.zeros(p), np.log(totals / np.add.reduceat(np.exp(offset), starts[:-1]))]
    )
    theta, ev_glm, summary = newton_maximize(glm, theta0, gtol=1e-16)
    assert summary.converged
    se_glm = np.sqrt(np.diag(np.linalg.inv(-ev_glm.hessian)))[:p]

    beta, ev, summary = newton_maximize(
        lambda b, o: cpoisson_evaluate(b, X, y, offset, starts, o), np.zeros(p), gtol=1e-16
    )
    assert summary.converged
    se = np.sqrt(np.diag(np.linalg.inv(-ev.hessian)))
    np.testing.assert_allclose(beta, theta[:p], rtol=1e-6)
    np.testing.assert_allclose(se, se_glm, rtol=1e-6)
    gap = np.sum(totals * np.log(totals) - totals - gammaln(totals + 1))
    assert ev_glm.loglik - ev.loglik == pytest.approx(gap, rel=1e-8)


def test_bad_arguments_are_rejected():
    X = np.zeros((4, 2))
    y = np.array([0.0, 1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="starts"):
        clogit_evaluate(np.zeros(2), X, y, np.array([0, 3]), 2)
    with pytest.raises(ValueError, match="shapes"):
        clogit_evaluate(np.zeros(3), X, y, np.array([0, 4]), 2)
    with pytest.raises(ValueError, match="order"):
        cpoisson_evaluate(np.zeros(2), X, y, None, np.array([0, 4]), 3)


@pytest.mark.parametrize("threshold", [0.0, np.inf])
def test_serial_and_threaded_kernels_agree(monkeypatch, threshold):
    rng = np.random.default_rng(12)
    X, y, starts = random_panel(rng, n_groups=120, min_size=1, max_size=25)
    offset = rng.normal(size=y.size)
    beta = np.array([0.2, -0.4, 0.1])
    ref_logit = clogit_evaluate_reference(beta, X, y, starts, 2, offset=offset)
    counts = rng.poisson(2.0, size=y.size).astype(float)
    ref_pois = cpoisson_evaluate_reference(beta, X, counts, offset, starts, 2)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_COST", threshold)
    for ev, ref in [
        (clogit_evaluate(beta, X, y, starts, 2, offset=offset), ref_logit),
        (cpoisson_evaluate(beta, X, counts, offset, starts, 2), ref_pois),
    ]:
        assert ev.loglik == pytest.approx(ref.loglik, rel=1e-12)
        np.testing.assert_allclose(ev.gradient, ref.gradient, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(ev.hessian, ref.hessian, rtol=1e-10, atol=1e-10)
