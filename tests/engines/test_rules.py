"""The integration rule: one place checks method, nagq and curvature; no silent switch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.design.build import build_design
from mixedglm.engines.aghq import AGHQEngine
from mixedglm.engines.rules import MAX_NAGQ, IntegrationRule, make_rule
from mixedglm.errors import MixedGLMError, QuadratureWarning
from mixedglm.families import get_family
from mixedglm.formula import parse_formula
from mixedglm.models.glmm import choose_structure


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, IntegrationRule("mvaghermite", 7, "observed")),
        ({"nagq": 1}, IntegrationRule("laplace", 1, "observed")),
        ({"method": "laplace"}, IntegrationRule("laplace", 1, "observed")),
        ({"method": "LAPLACE", "nagq": 1}, IntegrationRule("laplace", 1, "observed")),
        ({"nagq": 12.0}, IntegrationRule("mvaghermite", 12, "observed")),
        ({"nagq": "5"}, IntegrationRule("mvaghermite", 5, "observed")),
        ({"method": "mcaghermite", "nagq": 2}, IntegrationRule("mcaghermite", 2, "observed")),
        (
            {"method": "mcaghermite", "curvature": "fisher"},
            IntegrationRule("mcaghermite", 7, "fisher"),
        ),
    ],
)
def test_make_rule_accepts(kwargs, expected):
    assert make_rule(**kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "laplace", "nagq": 12}, "conflicts"),
        ({"method": "mvaghermite", "nagq": 1}, "nagq=1 is the Laplace"),
        ({"nagq": 2}, "at least 3 points"),
        ({"nagq": 7.9}, "positive integer"),
        ({"nagq": 0}, "positive integer"),
        ({"nagq": -3}, "positive integer"),
        ({"nagq": True}, "positive integer"),
        ({"nagq": float("nan")}, "positive integer"),
        ({"nagq": "many"}, "positive integer"),
        ({"nagq": MAX_NAGQ + 1}, f"at most {MAX_NAGQ}"),
        ({"method": "gauss"}, "unknown integration method"),
        ({"curvature": "hessian"}, "curvature must be"),
        ({"curvature": "fisher"}, "mode-curvature grids"),
        ({"method": "laplace", "curvature": "fisher", "supports_fisher": False}, "binomial"),
    ],
)
def test_make_rule_refuses(kwargs, message):
    with pytest.raises(MixedGLMError, match=message):
        make_rule(**kwargs)


def test_rule_helpers():
    rule = IntegrationRule("mvaghermite", 12)
    assert rule.n_points(2) == 144
    assert rule.laplace() == IntegrationRule("laplace", 1)
    assert rule.with_points(3) == IntegrationRule("mvaghermite", 3)
    assert rule.with_points(2) == IntegrationRule("mcaghermite", 2)
    assert rule.tolerance == 1e-10  # the mean-variance grid's fixed point, full rule
    coarse = rule.with_points(3, 1e-3)
    assert (coarse.nagq, coarse.tolerance, coarse.method) == (3, 1e-3, "mvaghermite")


def test_grid_tolerance_reaches_the_engine_and_only_moves_the_fixed_point():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(30), 6)
    x = rng.normal(size=g.size)
    y = (rng.random(g.size) < 1 / (1 + np.exp(-(0.3 + x + rng.normal(size=30)[g])))).astype(float)
    data = pd.DataFrame({"y": y, "x": x, "g": g})
    design = build_design(parse_formula("y ~ x + (1 | g)"), data, get_family("binomial"))
    structure = choose_structure(parse_formula("y ~ x + (1 | g)"), design, None)
    params = np.array([0.9, 0.2, 0.8])
    values = {}
    for tol in (1e-10, 1e-3):
        rule = IntegrationRule("mvaghermite", 3, tolerance=tol)
        engine = AGHQEngine(design.cluster_arrays(), get_family("binomial"), structure, rule)
        values[tol] = engine.evaluate(params, 0).loglik
    # a looser fixed point changes the 3-point value a little, never much
    assert values[1e-3] != values[1e-10]
    assert abs(values[1e-3] - values[1e-10]) < 1e-3


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(30), 5)
    x = rng.normal(size=g.size)
    u = rng.normal(size=30)[g]
    y = (rng.uniform(size=g.size) < 1 / (1 + np.exp(-(0.3 * x + u)))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "z": rng.normal(size=g.size), "g": g})


def test_glmm_refuses_conflicting_options(small):
    with pytest.raises(MixedGLMError, match="conflicts"):
        mg.glmm("y ~ x + (1 | g)", small, method="laplace", nagq=12, quiet=True)
    with pytest.raises(MixedGLMError, match="at least 3 points"):
        mg.glmm("y ~ x + (1 | g)", small, nagq=2, quiet=True)
    with pytest.raises(MixedGLMError, match="binomial and Poisson"):
        mg.glmm("x ~ z + (1 | g)", small, family="gaussian", method="laplace",
                curvature="fisher", quiet=True)  # fmt: skip


def test_large_grid_warning_counts_the_grid_used(small):
    """Laplace with two random effects uses one point: no warning about 7^2 points."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", QuadratureWarning)
        mg.glmm("y ~ x + (1 + x + z | g)", small, method="laplace", quiet=True)
    with pytest.warns(QuadratureWarning, match="1,600 quadrature points"):
        mg.glmm("y ~ x + (1 + x || g)", small, nagq=40, quiet=True)
