"""Covariance matrices, Wald and likelihood-ratio tests, delta-method intervals."""

from mixedglm.inference.tests import (
    TestResult,
    lr_test_variance,
    normal_ci,
    wald_test,
    z_pvalues,
)
from mixedglm.inference.vcov import (
    NOT_DEFINITE_NOTE,
    covariance_from_hessian,
    covariance_with_boundary,
)

__all__ = [
    "NOT_DEFINITE_NOTE",
    "TestResult",
    "covariance_from_hessian",
    "covariance_with_boundary",
    "lr_test_variance",
    "normal_ci",
    "wald_test",
    "z_pvalues",
]
