"""Benchmark: conditional logit on a panel shaped like the seed analysis.

The seed (``xtlogit paprbest ..., fe``) has 373,535 papers in 13,330 authors with 2 to 683
papers each, mostly one "best paper" per author, some authors with many. We simulate such a
panel (13,330 groups, sizes 2..683, mean about 28, one event in most groups, many events in
about 3 % of them, one group of 683 rows with exactly 300 events; 5 covariates), fit it with
``newton_maximize`` and the numba engine, and print wall time, iterations and memory. The
numba kernels are compiled (or loaded from the cache) by a warm-up call on a tiny problem
before timing, so the times exclude compilation. In the same run statsmodels'
``ConditionalLogit`` is fitted on the same data in a child process with a time limit, and its
time or error is printed.

Run: ``.venv/bin/python benchmarks/bench_clogit_engine.py [--statsmodels-timeout SECONDS]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
import tracemalloc

import numba
import numpy as np

from mixedglm.engines.conditional import clogit_evaluate
from mixedglm.optim import newton_maximize

G = 13_330
BETA = np.array([0.25, -0.02, 0.01, 0.015, -0.3])


def simulate(seed: int = 20240501) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X (N, 5), y (N,), starts (G + 1,), rows sorted by group."""
    rng = np.random.default_rng(seed)
    sizes = 2 + rng.negative_binomial(0.7, 0.7 / (0.7 + 25.0), size=G)
    big = rng.choice(G, 30, replace=False)
    sizes[big] = rng.integers(200, 684, size=30)
    sizes[big[0]] = 683
    sizes = np.minimum(sizes, 683)
    starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    N = int(starts[-1])
    # nauthors, npages, nrefs, jifperc, careerstage: within- and between-author variation
    scale = np.array([1.5, 8.0, 20.0, 25.0, 1.0])
    centre = np.array([3.0, 15.0, 40.0, 50.0, 2.0])
    X = centre + scale * (0.6 * rng.normal(size=(G, 5)).repeat(sizes, axis=0))
    X += scale * 0.8 * rng.normal(size=(N, 5))
    eta = X @ BETA
    y = np.zeros(N)
    many = rng.random(G) < 0.03
    many[big] = True
    for g in range(G):
        lo, hi = starts[g], starts[g + 1]
        e = eta[lo:hi] - eta[lo:hi].max()
        if not many[g]:
            w = np.exp(e)
            y[lo + rng.choice(hi - lo, p=w / w.sum())] = 1.0  # one event: softmax
            continue
        # many events: Bernoulli with an intercept giving the target rate; for the 683-row
        # group, redraw until exactly 300 events (an exact draw given k = 300)
        target = 300 / 683 if hi - lo == 683 else rng.uniform(0.15, 0.5)
        alpha = np.log(target / (1 - target)) - np.log(np.mean(np.exp(e)))
        for _ in range(10_000):
            draw = rng.random(hi - lo) < 1 / (1 + np.exp(-(alpha + e)))
            if hi - lo != 683 or draw.sum() == 300:
                break
        y[lo:hi] = draw
    return np.ascontiguousarray(X), y, starts


def fit(X: np.ndarray, y: np.ndarray, starts: np.ndarray) -> tuple[float, object, object]:
    def objective(beta: np.ndarray, order: int):
        return clogit_evaluate(beta, X, y, starts, order)

    t0 = time.perf_counter()
    beta, ev, summary = newton_maximize(objective, np.zeros(X.shape[1]))
    return time.perf_counter() - t0, (beta, ev), summary


def statsmodels_child(X, y, groups, queue) -> None:
    """Fit statsmodels' ConditionalLogit; put (seconds, outcome) on the queue."""
    import warnings

    from statsmodels.discrete.conditional_models import ConditionalLogit

    t0 = time.perf_counter()
    params = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = ConditionalLogit(y, X, groups=groups).fit()
            params = np.asarray(result.params)
            outcome = f"no exception, llf {result.llf:.4f}"
        except Exception as exc:  # report whatever it raises
            outcome = f"{type(exc).__name__}: {str(exc)[:200]}"
    messages = sorted({f"{w.category.__name__}: {str(w.message)[:100]}" for w in caught})
    if messages:
        outcome += "; warnings: " + " | ".join(messages)
    queue.put((time.perf_counter() - t0, outcome, params))


def run_statsmodels(X, y, starts, timeout: float) -> tuple[str, np.ndarray | None]:
    groups = np.repeat(np.arange(starts.size - 1), np.diff(starts))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=statsmodels_child, args=(X, y, groups, queue))
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.terminate()
        child.join()
        return f"did not finish within {timeout:.0f} s (stopped)", None
    if queue.empty():
        return f"child process ended with exit code {child.exitcode} and no result", None
    seconds, outcome, params = queue.get()
    return f"{seconds:.1f} s wall: {outcome}", params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statsmodels-timeout", type=float, default=600.0)
    parser.add_argument("--skip-statsmodels", action="store_true")
    args = parser.parse_args()

    X, y, starts = simulate()
    sizes = np.diff(starts)
    k = np.add.reduceat(y, starts[:-1])
    kk = np.minimum(k, sizes - k)
    print(
        f"panel: N = {y.size:,} rows, G = {sizes.size:,} groups, sizes {sizes.min()}..{sizes.max()}"
        f" (mean {sizes.mean():.1f}), events per group: 1 in {np.mean(k == 1):.1%} of groups,"
        f" max min(k, n-k) = {int(kk.max())}, sum n*min(k, n-k) = {int(np.sum(sizes * kk)):,}"
    )
    big = int(np.argmax(sizes))
    print(f"largest group: {sizes[big]} rows with {int(k[big])} events")

    # warm-up: compile the kernels or load them from numba's cache; not timed
    t0 = time.perf_counter()
    tiny = np.array([0, 4, 8], dtype=np.int64)
    for order in (0, 1, 2):
        clogit_evaluate(np.zeros(5), X[:8], np.r_[1.0, 0, 1, 0, 1, 0, 0, 0], tiny, order)
    print(f"warm-up (numba compile / cache load, excluded below): {time.perf_counter() - t0:.2f} s")

    threads = numba.get_num_threads()
    for n_threads in sorted({1, threads}):
        numba.set_num_threads(n_threads)
        fit(X, y, starts)  # one untimed pass so both runs start from warm caches
        seconds, (beta, ev), summary = fit(X, y, starts)
        t0 = time.perf_counter()
        for _ in range(5):
            clogit_evaluate(beta, X, y, starts, 2)
        per_eval2 = (time.perf_counter() - t0) / 5
        t0 = time.perf_counter()
        for _ in range(5):
            clogit_evaluate(beta, X, y, starts, 0)
        per_eval0 = (time.perf_counter() - t0) / 5
        print(
            f"mixedglm, {n_threads} thread(s): fit {seconds:.3f} s wall, {summary.iterations}"
            f" iterations, {summary.evaluations} evaluations, converged={summary.converged};"
            f" one evaluation: {per_eval2 * 1e3:.1f} ms with Hessian, {per_eval0 * 1e3:.1f} ms"
            " loglik only"
        )
    numba.set_num_threads(threads)
    se = np.sqrt(np.diag(np.linalg.inv(-ev.hessian)))
    print(f"  loglik {ev.loglik:.4f}")
    print(f"  beta {np.array2string(beta, precision=5)}  (true {BETA})")
    print(f"  se   {np.array2string(se, precision=5)}")

    tracemalloc.start()
    fit(X, y, starts)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"memory: peak traced (NumPy/Python) allocations during a fit {peak / 2**20:.1f} MiB;"
        f" process peak RSS {rss:.0f} MiB (includes numba/LLVM and the data,"
        f" X is {X.nbytes / 2**20:.1f} MiB)"
    )

    if args.skip_statsmodels:
        return
    print(f"statsmodels ConditionalLogit (BFGS, limit {args.statsmodels_timeout:.0f} s): ", end="")
    report, params = run_statsmodels(X, y, starts, args.statsmodels_timeout)
    print(report)
    if params is not None:
        at = clogit_evaluate(params, X, y, starts, 1)
        print(
            f"  statsmodels' params {np.array2string(params, precision=5)}: our loglik there"
            f" {at.loglik:.4f} ({at.loglik - ev.loglik:+.4f} vs our maximum),"
            f" max |score| {np.max(np.abs(at.gradient)):.3g}"
        )


if __name__ == "__main__":
    main()
