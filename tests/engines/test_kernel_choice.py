"""Which implementation a one-factor model takes (``engines/aghq/implementation.py``): the
compiled kernel, or its NumPy mirror while that is not built; ``MIXEDGLM_KERNELS`` checked;
whole fits equal on both; a first fit on an empty cache runs on the mirror while the kernel
compiles in the background for the next."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import mixedglm as mg
from mixedglm.engines.aghq import AGHQEngine, ClusterArrays, implementation
from mixedglm.engines.aghq.chunk import run_clusters
from mixedglm.engines.aghq.vectorised import run_clusters_vectorised
from mixedglm.engines.covariance import CovarianceStructure
from mixedglm.engines.rules import IntegrationRule
from mixedglm.errors import OptionError
from mixedglm.families import get_family


def _args(q: int = 1):
    """The arguments of an engine's first evaluation (a random slope too for ``q=2``)."""
    d = _data()
    y, x = d["yb"].to_numpy(float), d["x"].to_numpy()
    X = np.column_stack([x, np.ones(y.size)])
    Z = np.ascontiguousarray(X[:, ::-1][:, :q])  # _cons, then x
    starts = np.arange(0, y.size + 1, 8, dtype=np.int64)
    arrays = ClusterArrays(y, np.ones(y.size), np.zeros(y.size), X, Z, starts)
    columns = ("_cons", "x")[:q]
    engine = AGHQEngine(
        arrays, get_family("bernoulli", "logit"), CovarianceStructure("independent", columns),
        IntegrationRule("mvaghermite", 7, "observed"),
    )  # fmt: skip
    seen = []
    engine._clusters = lambda *args: seen.append(args) or run_clusters(*args)
    engine._choose_after = np.inf  # keep it
    x = np.zeros(engine.n_params)
    x[engine.n_beta :] = 0.5
    engine.loglik(x)
    return seen[0]


@pytest.mark.parametrize("value", ["jit", "fast", "1"])
def test_a_wrong_setting_is_an_error_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("MIXEDGLM_KERNELS", value)
    with pytest.raises(OptionError, match=r"MIXEDGLM_KERNELS.*auto, compiled or numpy"):
        implementation.kernels_setting()


@pytest.mark.parametrize("value,expected", [("", "auto"), (" Numpy ", "numpy")])
def test_the_setting_is_read_loosely(monkeypatch, value, expected):
    monkeypatch.setenv("MIXEDGLM_KERNELS", value)
    assert implementation.kernels_setting() == expected


def test_auto_takes_the_mirror_until_the_kernel_is_built(monkeypatch):
    """``auto``: the compiled kernel when it is ready or the model is large, else the
    mirror; ``compiled``/``numpy`` force one; random slopes always compiled."""
    args = _args()
    monkeypatch.setenv("MIXEDGLM_KERNELS", "auto")
    ready = {"now": False}
    monkeypatch.setattr(implementation, "compiled", lambda *a: ready["now"])
    started = []
    monkeypatch.setattr(implementation, "compile_in_background", lambda *a: started.append(a))
    assert implementation.choose(*args) is run_clusters_vectorised
    assert len(started) == 1  # the kernel compiles meanwhile, in another process
    ready["now"] = True
    assert implementation.choose(*args) is run_clusters
    ready["now"] = False
    work = args[1].y.shape[0] * args[2].nodes.shape[0]
    monkeypatch.setattr(implementation, "MIRROR_MAX_WORK", work - 1)
    assert implementation.choose(*args) is run_clusters  # too large: compiling pays
    monkeypatch.setattr(implementation, "MIRROR_MAX_WORK", work)
    assert implementation.choose(*args) is run_clusters_vectorised
    monkeypatch.setenv("MIXEDGLM_KERNELS", "compiled")
    assert implementation.choose(*args) is run_clusters
    monkeypatch.setenv("MIXEDGLM_KERNELS", "numpy")
    assert implementation.choose(*args) is run_clusters_vectorised
    assert implementation.choose(*_args(q=2)) is run_clusters  # q > 1: no mirror
    assert len(started) == 2  # only auto with the mirror compiles in the background


def _data(seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(60), 8)
    x = rng.normal(size=g.size)
    eta = -0.2 + 0.6 * x + rng.normal(0, 0.9, 60)[g]
    return pd.DataFrame(
        {
            "g": g,
            "x": x,
            "yb": rng.binomial(1, 1 / (1 + np.exp(-eta))),
            "yc": np.searchsorted([-1.0, 0.5], eta + rng.logistic(size=g.size)),
            "yp": rng.poisson(np.exp(0.5 * eta)),
        }
    )


@pytest.mark.parametrize(
    "formula,options",
    [
        ("yb ~ x + (1 | g)", {}),  # mvaghermite, 7 points
        ("yp ~ x + (1 | g)", {"family": "poisson", "method": "laplace"}),
        ("yc ~ x + (1 | g)", {"family": "ologit", "method": "mcaghermite", "nagq": 5}),
    ],
)
def test_whole_fits_are_equal_on_the_mirror_and_the_compiled_kernel(monkeypatch, formula, options):
    fits = {}
    for setting in ("compiled", "numpy"):
        monkeypatch.setenv("MIXEDGLM_KERNELS", setting)
        fits[setting] = mg.glmm(formula, _data(), nolog=True, quiet=True, **options)
    a, b = fits["compiled"], fits["numpy"]
    assert a.converged and b.converged
    assert abs(a.loglik - b.loglik) < 1e-9
    np.testing.assert_allclose(b.params_all, a.params_all, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.diag(b.cov_all), np.diag(a.cov_all), rtol=1e-6)


FIT = """
import mixedglm as mg
import pandas as pd
from mixedglm import compile_cache
from mixedglm.engines.aghq import chunk
res = mg.glmm("yb ~ x + (1 | g)", pd.read_csv({path!r}), nolog=True, quiet=True)
misses = sum(chunk.chunk.stats.cache_misses.values())
pids = [p.pid for p in compile_cache._launched.values() if p is not None]
print(len(chunk.chunk.overloads), misses, repr(res.loglik), *pids)
"""


def _wait_for(pid: int, timeout: float = 600.0) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    raise AssertionError(f"the background compilation {pid} still runs after {timeout} s")


@pytest.mark.slow
def test_a_first_fit_runs_on_the_mirror_and_the_next_session_compiled(tmp_path):
    """``auto`` on an empty cache: the first fit runs on the mirror (``chunk`` not compiled
    in the process) while a background process compiles it into the cache; once that has
    finished, the next session's fit loads it (no compilation) and runs compiled. Both give
    the compiled kernel's log likelihood."""
    path = tmp_path / "data.csv"
    _data().to_csv(path, index=False)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "MIXEDGLM_KERNELS": "auto"}
    run = {"env": env, "capture_output": True, "text": True, "check": True, "timeout": 600}
    script = FIT.format(path=str(path))
    first = subprocess.run([sys.executable, "-c", script], **run).stdout.split()
    assert first[:2] == ["0", "0"] and len(first) == 4  # mirror; one compilation started
    _wait_for(int(first[3]))
    second = subprocess.run([sys.executable, "-c", script], **run).stdout.split()
    assert second[:2] == ["1", "0"] and len(second) == 3  # loaded from the cache
    compiled = mg.glmm("yb ~ x + (1 | g)", _data(), nolog=True, quiet=True)
    assert abs(float(first[2]) - compiled.loglik) < 1e-9
    assert float(second[2]) == pytest.approx(compiled.loglik, abs=1e-12)


def test_an_engine_on_the_mirror_moves_to_the_kernel_once_it_is_built(monkeypatch):
    """While on the mirror the engine looks again every ``CHOOSE_AGAIN_S``: once the
    background compilation is in the cache, the next evaluation runs compiled (and the
    log likelihood is the same)."""
    from mixedglm.engines.aghq import engine as engine_module

    monkeypatch.setenv("MIXEDGLM_KERNELS", "auto")
    ready = {"now": False}
    monkeypatch.setattr(implementation, "compiled", lambda *a: ready["now"])
    monkeypatch.setattr(implementation, "compile_in_background", lambda *a: None)
    d = _args()[1]
    arrays = ClusterArrays(d.y, d.ntr, np.zeros(d.y.size), d.X, np.ones((d.y.size, 1)), d.starts)
    engine = AGHQEngine(
        arrays, get_family("bernoulli", "logit"), CovarianceStructure("independent", ("_cons",)),
        IntegrationRule("mvaghermite", 7, "observed"),
    )  # fmt: skip
    x = np.array([0.5, -0.2, 0.8])
    ll_mirror = engine.loglik(x)
    assert engine._clusters is run_clusters_vectorised
    ready["now"] = True
    assert engine.loglik(x) == ll_mirror  # not looked again yet (within CHOOSE_AGAIN_S)
    assert engine._clusters is run_clusters_vectorised
    monkeypatch.setattr(engine_module, "CHOOSE_AGAIN_S", 0.0)
    engine._choose_after = 0.0
    assert engine.loglik(x) == pytest.approx(ll_mirror, abs=1e-10)
    assert engine._clusters is run_clusters
