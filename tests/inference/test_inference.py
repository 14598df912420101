"""inference/: the covariance from the Hessian (boundary parameters, not-definite Hessians),
Wald and LR tests, z p-values and intervals against closed forms, and the variance
components' delta-method standard errors against finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.inference import (
    covariance_from_hessian,
    lr_test_variance,
    normal_ci,
    wald_test,
    z_pvalues,
)
from mixedglm.inference.varcomp import (
    atanh_ci,
    component_labels,
    component_rows,
    log_scale_ci,
)

# -- covariance_from_hessian ----------------------------------------------------------------


def _spd(k: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(k, k))
    return a @ a.T + k * np.eye(k)


def test_covariance_is_the_inverse_information():
    info = _spd(4, 1)
    cov, ok = covariance_from_hessian(-info)
    assert ok
    np.testing.assert_allclose(cov, np.linalg.inv(info), rtol=1e-12)
    np.testing.assert_array_equal(cov, cov.T)


def test_an_asymmetric_hessian_is_symmetrised():
    info = _spd(3, 2)
    skew = np.array([[0, 1e-3, 0], [-1e-3, 0, 2e-3], [0, -2e-3, 0]])
    cov, ok = covariance_from_hessian(-(info + skew))
    assert ok
    np.testing.assert_allclose(cov, np.linalg.inv(info), rtol=1e-12)


def test_boundary_parameters_get_nan_rows_and_the_rest_is_inverted_alone():
    info = _spd(4, 3)
    flags = np.array([False, False, True, False])
    cov, ok = covariance_from_hessian(-info, flags)
    assert ok
    assert np.isnan(cov[2]).all() and np.isnan(cov[:, 2]).all()
    keep = ~flags
    np.testing.assert_allclose(
        cov[np.ix_(keep, keep)], np.linalg.inv(info[np.ix_(keep, keep)]), rtol=1e-12
    )


def test_a_hessian_that_is_not_negative_definite_is_flagged():
    hessian = np.diag([-2.0, 0.5, -1.0])
    cov, ok = covariance_from_hessian(hessian)
    assert not ok
    np.testing.assert_allclose(cov, np.linalg.pinv(-hessian), rtol=1e-12)
    singular = np.array([[-1.0, -1.0], [-1.0, -1.0]])
    cov, ok = covariance_from_hessian(singular)
    assert not ok
    assert np.all(np.isfinite(cov))


# -- tests and intervals -----------------------------------------------------------------------


def test_z_pvalues_and_normal_intervals():
    np.testing.assert_allclose(
        z_pvalues(np.array([0.0, 1.959963984540054, -3.0])),
        [1.0, 0.05, 2 * stats.norm.cdf(-3.0)],
        rtol=1e-12,
    )
    lo, hi = normal_ci(np.array([1.0, -2.0]), np.array([0.5, 0.1]), 95.0)
    crit = 1.959963984540054
    np.testing.assert_allclose(lo, [1 - crit * 0.5, -2 - crit * 0.1], rtol=1e-14)
    np.testing.assert_allclose(hi, [1 + crit * 0.5, -2 + crit * 0.1], rtol=1e-14)
    lo90, hi90 = normal_ci(np.array([0.0]), np.array([1.0]), 90.0)
    assert hi90[0] == pytest.approx(1.6448536269514722, rel=1e-12) and lo90[0] == -hi90[0]


def test_wald_test_is_the_quadratic_form():
    b = np.array([0.5, -1.0, 0.25])
    cov = np.linalg.inv(_spd(3, 4))
    result = wald_test(b, cov)
    stat = float(b @ np.linalg.inv(cov) @ b)
    assert result.stat == pytest.approx(stat, rel=1e-12)
    assert result.df == 3
    assert result.p == pytest.approx(stats.chi2.sf(stat, 3), rel=1e-12)
    assert result.kind == "chi2"
    # one coefficient: the square of its z statistic
    one = wald_test(np.array([2.0]), np.array([[0.25]]))
    assert one.stat == pytest.approx(16.0) and one.p == pytest.approx(z_pvalues(4.0), rel=1e-12)


def test_wald_test_of_nothing_and_of_a_singular_covariance():
    empty = wald_test(np.zeros(0), np.zeros((0, 0)))
    assert empty.df == 0 and math.isnan(empty.stat) and math.isnan(empty.p)
    # a singular covariance: the generalized inverse
    cov = np.array([[1.0, 1.0], [1.0, 1.0]])
    b = np.array([1.0, 1.0])
    result = wald_test(b, cov)
    assert result.stat == pytest.approx(float(b @ np.linalg.pinv(cov) @ b), rel=1e-12)


def test_lr_test_of_one_variance_is_chibar2():
    result = lr_test_variance(-100.0, -110.0, 1)
    assert (result.stat, result.df, result.kind) == (20.0, 1, "chibar2")
    assert result.p == pytest.approx(0.5 * stats.chi2.sf(20.0, 1), rel=1e-12)
    assert result.to_dict() == {"stat": 20.0, "df": 1, "p": result.p, "kind": "chibar2"}


def test_lr_test_at_the_boundary_and_of_several_components():
    at_zero = lr_test_variance(-100.0, -100.0 - 1e-9, 1)
    assert at_zero.stat == 0.0 and at_zero.p == 1.0
    several = lr_test_variance(-100.0, -104.0, 3)
    assert several.kind == "chi2" and several.df == 3
    assert several.p == pytest.approx(stats.chi2.sf(8.0, 3), rel=1e-12)


def test_intervals_on_transformed_scales():
    crit = 1.959963984540054
    lo, hi = log_scale_ci(2.0, 0.4, crit)
    assert math.log(lo) == pytest.approx(math.log(2.0) - crit * 0.2, rel=1e-12)
    assert math.log(hi) == pytest.approx(math.log(2.0) + crit * 0.2, rel=1e-12)
    lo, hi = atanh_ci(0.5, 0.1, crit)
    half = crit * 0.1 / 0.75
    assert (lo, hi) == pytest.approx(
        (math.tanh(math.atanh(0.5) - half), math.tanh(math.atanh(0.5) + half)), rel=1e-12
    )
    assert all(math.isnan(v) for v in log_scale_ci(0.0, 0.1, crit))
    assert all(math.isnan(v) for v in atanh_ci(1.0, 0.1, crit))
    assert all(math.isnan(v) for v in log_scale_ci(1.0, math.nan, crit))


# -- variance components: delta method vs finite differences -------------------------------------


def _numeric_jacobian(fun, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of a vector function."""
    cols = []
    for j in range(theta.shape[0]):
        e = np.zeros_like(theta)
        e[j] = h
        cols.append((np.asarray(fun(theta + e)) - np.asarray(fun(theta - e))) / (2 * h))
    return np.column_stack(cols)


CASES = [
    ("independent", ("x", "_cons"), [0.7, 1.3]),
    ("unstructured", ("x", "z", "_cons"), [0.9, 0.3, -0.4, 0.8, 0.2, 1.1]),
    ("exchangeable", ("x", "z", "_cons"), [0.6, 0.25]),
    ("identity", ("x", "_cons"), [0.45]),
]


@pytest.mark.parametrize(("kind", "columns", "theta"), CASES)
def test_variance_rows_delta_method_matches_finite_differences(kind, columns, theta):
    structure = CovarianceStructure(kind, columns)
    theta = np.array(theta)
    cov_theta = np.linalg.inv(_spd(theta.shape[0], 5)) * 0.01
    rows = component_rows(structure, theta, cov_theta, "g", 95.0)
    labels = component_labels(structure, "var")
    assert [r.name for r in rows] == [label for label, *_ in labels]

    def values(t):
        sigma = structure.sigma(t)
        return [sigma[a, b] for _, _, a, b in labels]

    jac = _numeric_jacobian(values, theta)
    se = np.sqrt(np.einsum("ij,jk,ik->i", jac, cov_theta, jac))
    np.testing.assert_allclose([r.estimate for r in rows], values(theta), rtol=1e-12)
    np.testing.assert_allclose([r.se for r in rows], se, rtol=1e-6)
    crit = stats.norm.ppf(0.975)
    for row in rows:
        assert row.group == "g"
        if row.kind == "var":
            assert row.z is None and row.p is None
            assert (row.ci_low, row.ci_high) == pytest.approx(
                log_scale_ci(row.estimate, row.se, crit), rel=1e-12
            )
        else:
            assert row.z == pytest.approx(row.estimate / row.se)
            assert row.p == pytest.approx(2 * stats.norm.sf(abs(row.z)))
            assert row.ci_low == pytest.approx(row.estimate - crit * row.se, rel=1e-12)


@pytest.mark.parametrize(("kind", "columns", "theta"), CASES)
def test_sd_rows_delta_method_matches_finite_differences(kind, columns, theta):
    structure = CovarianceStructure(kind, columns)
    theta = np.array(theta)
    cov_theta = np.linalg.inv(_spd(theta.shape[0], 6)) * 0.01
    rows = component_rows(structure, theta, cov_theta, "g", 90.0, "sd")
    labels = component_labels(structure, "sd")
    assert [r.name for r in rows] == [label for label, *_ in labels]
    assert all(r.name.startswith(("sd(", "corr(")) for r in rows)

    def values(t):
        sigma = structure.sigma(t)
        sd = np.sqrt(np.diag(sigma))
        return [sd[a] if k == "sd" else sigma[a, b] / (sd[a] * sd[b]) for _, k, a, b in labels]

    jac = _numeric_jacobian(values, theta)
    se = np.sqrt(np.einsum("ij,jk,ik->i", jac, cov_theta, jac))
    np.testing.assert_allclose([r.estimate for r in rows], values(theta), rtol=1e-12)
    np.testing.assert_allclose([r.se for r in rows], se, rtol=1e-6)
    crit = stats.norm.ppf(0.95)
    for row in rows:
        ci = log_scale_ci if row.kind == "sd" else atanh_ci
        assert (row.ci_low, row.ci_high) == pytest.approx(ci(row.estimate, row.se, crit), rel=1e-12)


def test_component_names_in_statas_order():
    un = CovarianceStructure("unstructured", ("_cons", "x"))
    assert [label for label, *_ in component_labels(un)] == [
        "var(x)",
        "var(_cons)",
        "cov(x,_cons)",
    ]
    ex = CovarianceStructure("exchangeable", ("x", "z"))
    assert [label for label, *_ in component_labels(ex, "sd")] == ["sd(x z)", "corr(x z)"]
    one = CovarianceStructure("unstructured", ("_cons",))
    assert [label for label, *_ in component_labels(one)] == ["var(_cons)"]
