"""The vectorised one-factor quadrature against the compiled kernel it mirrors.

Every evaluation of an :class:`AGHQEngine` runs both ``run_clusters`` (compiled) and
``run_clusters_vectorised`` on the inputs the engine builds, each with its own copy of the
warm-start state, and compares everything they return and write: log-likelihoods, scores,
Hessian, posterior moments, statuses, modes and grids.
"""

from __future__ import annotations

import numpy as np
import pytest

from mixedglm.engines.aghq import AGHQEngine, ClusterArrays, vectorised
from mixedglm.engines.aghq import engine as engine_module
from mixedglm.engines.aghq.chunk import run_clusters
from mixedglm.engines.aghq.cluster import Out, State
from mixedglm.engines.aghq.vectorised import run_clusters_vectorised
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.engines.rules import IntegrationRule
from mixedglm.families import get_family

RTOL, ATOL = 1e-9, 1e-10


def simulate(
    family: str, n_clusters: int = 15, seed: int = 3, *, offset: bool = False,
    weights: bool = False, cluster_weights: bool = False,
) -> ClusterArrays:  # fmt: skip
    """Small clustered data with three fixed effects and a random intercept (SD 0.8)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 12, n_clusters)
    n = int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    x = rng.normal(size=n)
    X = np.ascontiguousarray(np.column_stack([x, rng.binomial(1, 0.4, n), np.ones(n)]))
    off = rng.normal(scale=0.3, size=n) if offset else np.zeros(n)
    eta = X @ np.array([0.5, -0.4, -0.3]) + off + np.repeat(rng.normal(0, 0.8, n_clusters), sizes)
    trials = np.ones(n)
    if family == "bernoulli":
        y = rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float)
    elif family == "binomial":
        trials = rng.integers(1, 6, n).astype(float)
        y = rng.binomial(trials.astype(int), 1 / (1 + np.exp(-eta))).astype(float)
    elif family in ("poisson", "nbinomial"):
        y = rng.poisson(np.exp(eta) * rng.gamma(1.25, 0.8, n)).astype(float)
    elif family == "gamma":
        y = rng.gamma(3.0, np.exp(eta) / 3.0)
    elif family == "ordinal":
        y = np.searchsorted([-1.0, 0.2, 1.5], eta + rng.logistic(size=n)).astype(float)
    else:
        y = eta + rng.normal(scale=0.7, size=n)
    return ClusterArrays(
        y, trials, off, X, np.ones((n, 1)), starts,
        weights=rng.integers(1, 4, n).astype(float) if weights else None,
        cluster_weights=rng.uniform(0.5, 2.0, n_clusters) if cluster_weights else None,
    )  # fmt: skip


def make_engine(
    family: str, link: str, method: str = "mvaghermite", nagq: int = 7,
    curvature: str = "observed", tolerance: float = 1e-10, **data: bool,
) -> AGHQEngine:  # fmt: skip
    name, _, dispersion = family.partition(" ")
    fam = get_family(name, link, dispersion or None)
    if name == "ordinal":
        fam = fam.with_categories((0, 1, 2, 3))
    rule = IntegrationRule("laplace" if nagq == 1 else method, nagq, curvature, tolerance)
    structure = CovarianceStructure("independent", ("_cons",))
    return AGHQEngine(simulate(name, **data), fam, structure, rule)


def params_for(engine: AGHQEngine, shift: float = 0.0) -> np.ndarray:
    return np.r_[0.4 + shift, -0.3, -0.2, 0.7 - shift, [np.log(0.8)] * engine.n_aux]


def assert_same(ref: Out, vec: Out, st_ref: State, st_vec: State, skip: list[int]) -> None:
    """Everything agrees (clusters ``skip`` left out but for their status)."""
    np.testing.assert_array_equal(vec.status, ref.status)
    keep = np.ones(ref.ll.shape[0], dtype=bool)
    keep[skip] = False
    pairs = [
        ("ll", ref.ll[keep], vec.ll[keep]),
        ("grad", ref.grad[keep], vec.grad[keep]),
        ("post_mean", ref.post_mean[keep], vec.post_mean[keep]),
        ("post_cov", ref.post_cov[keep], vec.post_cov[keep]),
        ("modes", st_ref.modes[keep], st_vec.modes[keep]),
        ("grid_m", st_ref.grid_m[keep], st_vec.grid_m[keep]),
        ("grid_r", st_ref.grid_r[keep], st_vec.grid_r[keep]),
    ]
    if not skip:
        pairs.append(("hess", ref.hess.sum(axis=0), vec.hess.sum(axis=0)))
    for name, expected, actual in pairs:
        assert actual.shape == expected.shape, name
        np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=name)


class Twin:
    """Installed as the engine's implementation (what ``choose`` returns): runs both
    implementations on the engine's inputs, each with its own copy of the state (the engine
    keeps the compiled one's), and compares them; ``calls`` collects ``(flags, compiled out,
    vectorised out)``."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.skip: list[int] = []

    def __call__(self, fam, d, g, fl, st, n_par):
        mine = State(st.modes.copy(), st.grid_m.copy(), st.grid_r.copy())
        ref = run_clusters(fam, d, g, fl, st, n_par)
        vec = run_clusters_vectorised(fam, d, g, fl, mine, n_par)
        assert_same(ref, vec, st, mine, self.skip)
        self.calls.append((fl, ref, vec))
        return ref


@pytest.fixture
def twin(monkeypatch: pytest.MonkeyPatch) -> Twin:
    both = Twin()
    monkeypatch.setattr(engine_module, "choose", lambda *args: both)
    return both


def exercise(engine: AGHQEngine) -> None:
    """Order 2 from a cold state, then order 0 and order 1 warm-started elsewhere."""
    x = params_for(engine)
    engine.fixed_grid_hessian(x)
    engine.loglik(params_for(engine, 0.1))
    engine.gradient(params_for(engine, -0.05))


RULES = [("mvaghermite", 7), ("mcaghermite", 5), ("laplace", 1)]
FAST_FAMILIES = [("bernoulli", "logit"), ("gaussian", "identity")]
SLOW_FAMILIES = [
    ("bernoulli", "probit"),
    ("bernoulli", "cloglog"),
    ("binomial", "logit"),
    ("poisson", "log"),
    ("nbinomial", "log"),
    ("nbinomial constant", "log"),
    ("gamma", "log"),
    ("ordinal", "logit"),
    ("ordinal", "probit"),
]
FAMILIES = FAST_FAMILIES + [pytest.param(*f, marks=pytest.mark.slow) for f in SLOW_FAMILIES]


@pytest.mark.parametrize(("method", "nagq"), RULES)
@pytest.mark.parametrize(("family", "link"), FAMILIES)
def test_families_and_rules(twin, family, link, method, nagq):
    exercise(make_engine(family, link, method, nagq, offset=family.startswith("poisson")))
    flags = [fl for fl, _, _ in twin.calls]
    assert [fl.order for fl in flags] == [2, 0, 1]
    assert [fl.warm for fl in flags] == [False, True, True]


@pytest.mark.parametrize(
    ("family", "link", "method", "nagq"),
    [
        ("bernoulli", "logit", "mcaghermite", 5),
        ("bernoulli", "logit", "laplace", 1),
        ("bernoulli", "logit", "mvaghermite", 7),  # the first grid at the Fisher curvature
        pytest.param("bernoulli", "cloglog", "mcaghermite", 4, marks=pytest.mark.slow),
        pytest.param("poisson", "log", "laplace", 1, marks=pytest.mark.slow),
        pytest.param("binomial", "probit", "mcaghermite", 3, marks=pytest.mark.slow),
    ],
)
def test_fisher_curvature(twin, family, link, method, nagq):
    exercise(make_engine(family, link, method, nagq, curvature="fisher"))
    assert len(twin.calls) == 3


@pytest.mark.parametrize(("family", "link"), FAST_FAMILIES)
@pytest.mark.parametrize(("method", "nagq"), RULES)
def test_fixed_grid_without_motion(twin, family, link, method, nagq):
    """``exact=False``: the fixed-grid score alone, at orders 1 and 2."""
    engine = make_engine(family, link, method, nagq)
    engine.cluster_terms(params_for(engine), 2, exact=False)
    engine.cluster_terms(params_for(engine, 0.1), 1, exact=False)
    assert [fl.exact for fl, _, _ in twin.calls] == [False, False]


@pytest.mark.parametrize(
    ("family", "link", "data"),
    [
        ("bernoulli", "logit", {"cluster_weights": True}),
        ("gaussian", "identity", {"weights": True, "cluster_weights": True}),
        pytest.param("poisson", "log", {"offset": True, "weights": True}, marks=pytest.mark.slow),
        pytest.param("ordinal", "logit", {"weights": True}, marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize(("method", "nagq"), [("mvaghermite", 7), ("mcaghermite", 5)])
def test_weights(twin, family, link, data, method, nagq):
    exercise(make_engine(family, link, method, nagq, **data))
    assert len(twin.calls) == 3


@pytest.mark.parametrize(("family", "link"), FAST_FAMILIES)
def test_meanvar_without_fixed_point_falls_back(twin, family, link):
    """A zero tolerance is never met: every cluster falls back to the mode-curvature grid
    after 200 iterations (status 2), cold and warm."""
    engine = make_engine(family, link, tolerance=0.0)
    exercise(engine)
    assert all(np.all(vec.status == 2) for _, _, vec in twin.calls)


def test_some_clusters_fall_back(twin):
    """A warm start from a degenerate grid (all nodes at one point: no posterior variance)
    fails at once for that cluster only, which falls back (status 2) among converged ones."""
    engine = make_engine("bernoulli", "logit")
    engine.loglik(params_for(engine))
    engine._state.grid_m[[2, 7]] = 40.0
    engine._state.grid_r[[2, 7]] = 1e-300
    engine.fixed_grid_hessian(params_for(engine))
    status = twin.calls[1][2].status
    assert list(np.flatnonzero(status)) == [2, 7] and np.all(status[[2, 7]] == 2)


@pytest.mark.parametrize(("method", "nagq"), RULES)
def test_a_cluster_without_mode(twin, method, nagq):
    """NaN data in one cluster: its mode is not found (status 1, or 2 after the mean-variance
    iteration fails too) in both. Its mode and grid are left out of the comparison: the
    compiled kernel leaves there what its scratch arrays held from the previous cluster."""
    a = make_engine("bernoulli", "logit").arrays
    offset = a.offset.copy()
    offset[a.starts[4] : a.starts[5]] = np.nan
    arrays = ClusterArrays(a.y, a.trials, offset, a.X, a.Z, a.starts)
    rule = IntegrationRule("laplace" if nagq == 1 else method, nagq)
    engine = AGHQEngine(
        arrays, get_family("bernoulli"), CovarianceStructure("independent", ("_cons",)), rule
    )
    twin.skip = [4]
    engine.fixed_grid_hessian(params_for(engine))
    _, ref, vec = twin.calls[0]
    assert list(np.flatnonzero(vec.status)) == [4]
    assert vec.status[4] == (2 if method == "mvaghermite" else 1)
    assert np.isnan(vec.ll[4]) and np.isnan(ref.ll[4])


@pytest.mark.slow
def test_damped_newton_steps(twin, monkeypatch):
    """NB1 with a small dispersion is not concave in eta for large counts: started far
    from the modes, the Newton search takes damped steps (and backs up) in both."""
    damped = []

    def spy(neg_hess):
        damped.append(neg_hess.size)
        return damped_chol(neg_hess)

    damped_chol = vectorised._damped_chol
    monkeypatch.setattr(vectorised, "_damped_chol", spy)
    engine = make_engine("nbinomial constant", "log", "mcaghermite", 5)
    engine._state.modes[:] = -8.0
    x = params_for(engine)
    x[3:] = 3.0, np.log(0.01)
    engine.fixed_grid_hessian(x)
    assert sum(damped) > 0


def test_more_than_one_random_effect_is_refused():
    engine = make_engine("bernoulli", "logit")
    state = State(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2, 2)))
    grid = engine_module.cluster.Grid(np.zeros((4, 2)), np.zeros(4), np.zeros((3, 2, 2)), np.eye(2))
    with pytest.raises(ValueError, match="one random effect"):
        run_clusters_vectorised(engine.family.token, None, grid, None, state, 5)  # type: ignore[arg-type]
