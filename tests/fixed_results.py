"""Results built from fixed numbers, no fitting: the seed's xtlogit estimates as a GLMM
result, and small GLMM, conditional and hybrid results for the compare() tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mixedglm.design.build import GroupInfo, ModelDesign
from mixedglm.design.hybrid import HybridDecomposition, VariableTerms
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.families import get_family
from mixedglm.formula import parse_formula
from mixedglm.optim import OptSummary
from mixedglm.results.conditional import ConditionalResults
from mixedglm.results.glmm import GLMMResults
from mixedglm.results.hybrid import HybridResults

NAMES = [
    "nauthors",
    "npages",
    "nrefs",
    "jifperc",
    "careerstage",
    "C(female)[Female]",
    "C(usa)[Yes]",
    "C(socialscience)[Yes]",
    "_cons",
]
BETA = [
    0.0729849,
    0.014749,
    0.006277,
    0.0399781,
    -0.0394571,
    -0.2309206,
    0.2643758,
    0.1206236,
    -3.993144,
]
SE = [
    0.0013875,
    0.0009566,
    0.0001762,
    0.0002369,
    0.0008703,
    0.0204889,
    0.0267614,
    0.0276417,
    0.0237151,
]
SIGMA_U, SE_SIGMA_U = 0.7303151, 0.0082153


def seed_sizes() -> np.ndarray:
    """14,129 cluster sizes summing to 374,334 with min 1, max 683 (as the seed's data)."""
    sizes = np.ones(14129, dtype=np.int64)
    sizes[1] = 683
    rest = 374334 - sizes.sum()
    sizes[2:] += rest // 14127
    sizes[2 : 2 + rest % 14127] += 1
    return sizes


def fixed_glmm_results(
    names: list[str],
    beta: np.ndarray,
    se: np.ndarray,
    sigma_u: float,
    se_sigma_u: float,
    loglik: float,
    lr_stat: float,
    nagq: int,
) -> GLMMResults:
    """A random-intercept logit result on the seed's cluster sizes from fixed numbers:
    estimates, their (independent) standard errors, the intercept's SD and the likelihoods."""
    sizes = seed_sizes()
    n = int(sizes.sum())
    design = ModelDesign(
        formula=parse_formula("topq ~ x + (1 | id)"),
        response="topq",
        y=np.zeros(n),
        trials=np.ones(n),
        offset=np.zeros(n),
        X=np.broadcast_to(0.0, (n, len(names))),
        x_names=tuple(names),
        Z=np.broadcast_to(1.0, (n, 1)),
        z_names=("_cons",),
        group=GroupInfo("id", np.arange(sizes.shape[0]), sizes),
        group_codes=np.zeros(n, dtype=np.int64),
        starts=np.r_[0, np.cumsum(sizes)],
        row_index=None,
        random_terms=(),
    )
    return GLMMResults(
        design=design,
        family=get_family("bernoulli", "logit"),
        structure=CovarianceStructure("independent", ("_cons",)),
        method="mvaghermite",
        nagq=nagq,
        params_all=np.r_[beta, sigma_u],
        cov_all=np.diag(np.r_[se, se_sigma_u] ** 2),
        loglik=loglik,
        loglik_pooled=loglik - lr_stat / 2,
        opt=OptSummary(True, 4, loglik, 0, 0, "converged", (), 5),
        time_s=1.0,
        notes=(),
        posterior_mean=np.zeros((1, 1)),
        posterior_cov=np.zeros((1, 1, 1)),
    )


def seed_like_results(loglik: float = -209470.86, lr_stat: float = 16000.0) -> GLMMResults:
    """The seed's xtlogit estimates (12 points)."""
    return fixed_glmm_results(NAMES, BETA, SE, SIGMA_U, SE_SIGMA_U, loglik, lr_stat, 12)


def glmm_result() -> GLMMResults:
    """A random-intercept logit on the seed's cluster sizes: x and _cons, ll -1000."""
    return fixed_glmm_results(
        ["x", "_cons"], np.array([0.5, -1.0]), np.array([0.1, 0.2]), 0.8, 0.05, -1000.0, 40.0, 7
    )


def fe_result(eform: bool = False) -> ConditionalResults:
    """A conditional logit on 50 groups of 4: x estimated, z omitted."""
    return ConditionalResults(
        kind="logit",
        response="topq",
        group=GroupInfo("id", np.arange(50), np.full(50, 4)),
        names=("x",),
        all_names=("x", "z"),
        omitted=(("z", "no within-group variance"),),
        params_array=np.array([0.45]),
        cov_array=np.array([[0.12**2]]),
        loglik=-120.0,
        loglik_0=-130.0,
        opt=OptSummary(True, 3, -120.0, 0.0, 0.0, "converged", (), 4),
        time_s=0.1,
        eform=eform,
    )


def hybrid_result() -> HybridResults:
    """A hybrid logit with W__x and B__x on the seed's cluster sizes."""
    glmm = fixed_glmm_results(
        ["W__x", "B__x", "_cons"],
        np.array([0.4, 0.9, -1.1]),
        np.array([0.1, 0.3, 0.2]),
        0.7,
        0.05,
        -990.0,
        30.0,
        7,
    )
    dec = HybridDecomposition(
        frame=pd.DataFrame(),
        response="topq",
        cluster="id",
        cre=False,
        residual=(),
        terms=(VariableTerms("x", "W__x", "B__x"),),
        skipped=(),
        within_percent={"x": 60},
        n_dropped=0,
        notes=(),
    )
    return HybridResults(glmm, dec, "binomial", "logit")
