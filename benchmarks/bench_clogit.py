"""Benchmark: the seed's fixed-effects logit on the bundled ``papers`` data, through the API.

``mg.clogit("paprbest ~ nauthors + npages + nrefs + jifperc + careerstage + C(female) +
C(usa) + C(socialscience)", papers, group="id")`` - 374,334 papers by 14,129 authors, 373,535
papers in 13,330 informative groups of 2 to 683 papers. Printed: the wall time of the
estimation (``res.time_s``: the within-group preparation, Newton's iterations and the
covariance matrix) and of the whole call (formula, design matrix, sorting, notes included;
the DataFrame already in memory), the first call of the process apart (it loads numba's
compiled kernels from the cache), peak memory, iterations. In the same run statsmodels'
``ConditionalLogit`` is fitted on the same 5 covariates in a child process with a time limit
(default 300 s), and its time or the error it raises is printed; then both are run on a
small panel with one group of 683 rows and 300 events, where statsmodels' recursion overflows.

Many events per group: papers has one event per group, the cheapest case of the recursion
(a softmax). ``events_panel()`` keeps papers' authors and covariates and draws a new outcome
from a conditional logit with about 46% events (about 13 events in an author's 28 papers on
average), so the ``O(n k)`` recursion does real work. Printed: our ``clogit`` (estimation and
whole call) and a pooled ``statsmodels`` ``Logit`` of the same outcome on the same covariates
plus a constant, timed in the same run, and the ratio of the two (the target is 4 or less).

Run: ``.venv/bin/python benchmarks/bench_clogit.py [--repeat N] [--statsmodels-timeout S]
[--only-events]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import time
import tracemalloc

import numba
import numpy as np
import pandas as pd

import mixedglm as mg
from mixedglm.datasets import load_dataset
from mixedglm.datasets.papers import PAPRBEST_BETA
from mixedglm.results.conditional import ConditionalResults

FORMULA = (
    "paprbest ~ nauthors + npages + nrefs + jifperc + careerstage"
    " + C(female) + C(usa) + C(socialscience)"
)
COVARIATES = ["nauthors", "npages", "nrefs", "jifperc", "careerstage"]


def timed_fit(data) -> tuple[float, ConditionalResults]:
    t0 = time.perf_counter()
    res = mg.clogit(FORMULA, data, group="id", quiet=True)
    return time.perf_counter() - t0, res


def statsmodels_child(y, X, groups, queue) -> None:
    """Fit statsmodels' ConditionalLogit; put (seconds, outcome, params) on the queue."""
    import warnings

    from statsmodels.discrete.conditional_models import ConditionalLogit

    t0 = time.perf_counter()
    params = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = ConditionalLogit(y, X, groups=groups).fit(disp=False)
            params = np.asarray(result.params)
            outcome = f"finished, llf {result.llf:.3f}"
        except BaseException as exc:  # report whatever it raises (RecursionError included)
            outcome = f"{type(exc).__name__}: {str(exc)[:160]}"
    messages = sorted({f"{w.category.__name__}: {str(w.message)[:100]}" for w in caught})
    if messages:
        outcome += "; warnings: " + " | ".join(messages)
    queue.put((time.perf_counter() - t0, outcome, params))


def run_statsmodels(y, X, groups, timeout: float) -> tuple[str, np.ndarray | None]:
    """statsmodels' fit in a child process (it drops the all-0/all-1 groups itself)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=statsmodels_child, args=(y, X, groups, queue))
    t0 = time.perf_counter()
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.terminate()
        child.join()
        return f"did not finish within the {timeout:.0f} s limit (stopped)", None
    if queue.empty():
        wall = time.perf_counter() - t0
        return f"child process died (exit code {child.exitcode}) after {wall:.1f} s", None
    seconds, outcome, params = queue.get()
    return f"{seconds:.1f} s wall: {outcome}", params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls after the first")
    parser.add_argument("--statsmodels-timeout", type=float, default=300.0)
    parser.add_argument("--skip-statsmodels", action="store_true")
    parser.add_argument(
        "--only-events", action="store_true", help="only the many-events comparison"
    )
    args = parser.parse_args()

    load = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} cores, numba threads {numba.get_num_threads()}, "
        f"load average {load:.2f} at start (cores shared with other work: times are noisy)"
    )
    t0 = time.perf_counter()
    data = load_dataset("papers")
    print(f"loading papers: {time.perf_counter() - t0:.2f} s ({len(data):,} rows)")
    if args.only_events:
        many_events_comparison(data, args.repeat)
        return

    first_call, res = timed_fit(data)
    print(
        f"first call of the process (numba kernels loaded from cache): whole call "
        f"{first_call:.2f} s, estimation {res.time_s:.2f} s"
    )
    calls, estimations = [], []
    for _ in range(args.repeat):
        seconds, res = timed_fit(data)
        calls.append(seconds)
        estimations.append(res.time_s)
    print(
        f"mixedglm.clogit, {args.repeat} further calls: estimation median "
        f"{statistics.median(estimations):.3f} s (min {min(estimations):.3f}); whole call median "
        f"{statistics.median(calls):.3f} s (min {min(calls):.3f}); {res.iterations} Newton "
        f"iterations, {res.opt.evaluations} evaluations, converged={res.converged}"
    )
    t0 = time.perf_counter()
    mg.clogit(FORMULA, "papers", group="id", quiet=True)
    print(
        f"whole call with data='papers' (reading the bundled file too): "
        f"{time.perf_counter() - t0:.2f} s"
    )
    print(
        f"  N = {res.nobs:,}, groups = {res.n_groups:,} (sizes {res.group.min}..{res.group.max}),"
        f" loglik = {res.loglik:.3f}, LR chi2({res.lr_test.df}) = {res.lr_test.stat:.2f}"
    )
    print(
        "  "
        + "  ".join(
            f"{n} {b:.6f} ({s:.6f})"
            for n, b, s in zip(res.params.index, res.params, res.bse, strict=True)
        )
    )

    tracemalloc.start()
    timed_fit(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"memory: peak traced NumPy/Python allocations during a call {peak / 2**20:.0f} MiB; "
        f"process peak RSS {rss:.0f} MiB (data, numba/LLVM and formulaic included)"
    )

    many_events_comparison(data, args.repeat)
    if args.skip_statsmodels:
        return
    print(
        f"statsmodels ConditionalLogit on the same data (child process, limit "
        f"{args.statsmodels_timeout:.0f} s): ",
        end="",
        flush=True,
    )
    y, X = data["paprbest"].to_numpy(float), data[COVARIATES].to_numpy(float)
    report, params = run_statsmodels(y, X, data["id"].to_numpy(), args.statsmodels_timeout)
    print(report)
    if params is not None:
        diff = np.max(np.abs(params - res.params.to_numpy()) / res.bse.to_numpy())
        print(f"  its estimates differ from ours by at most {diff:.2g} standard errors")

    # papers has one event per group; with many events in a large group exp(eta) products
    # overflow in statsmodels' recursion
    frame = many_events_case()
    ours = mg.clogit("y ~ x", frame, group="g", quiet=True)
    print(
        "one group of 683 rows with 300 events (x around 5, beta 1) plus 50 groups of 10: "
        f"mixedglm beta {ours.params['x']:.5f} (SE {ours.bse['x']:.5f}), loglik "
        f"{ours.loglik:.4f}; statsmodels: ",
        end="",
        flush=True,
    )
    y, X, groups = frame["y"].to_numpy(float), frame[["x"]].to_numpy(), frame["g"].to_numpy()
    report, params = run_statsmodels(y, X, groups, args.statsmodels_timeout)
    print(report + (f", beta {params[0]:.5f}" if params is not None else ""))


def events_panel(papers: pd.DataFrame, share: float = 0.46, seed: int = 3) -> pd.DataFrame:
    """papers' authors and covariates with an outcome ``y`` drawn from a logit with author
    intercepts ``logit(share) + N(0, 0.5^2)`` and papers' conditional-logit coefficients on
    the within-author deviations of the covariates: about ``share`` of the papers are events."""
    rng = np.random.default_rng(seed)
    codes, _ = pd.factorize(papers["id"], sort=True)
    x = papers[COVARIATES].to_numpy(float)
    sizes = np.bincount(codes)
    means = np.stack([np.bincount(codes, weights=x[:, j]) / sizes for j in range(x.shape[1])])
    beta = np.array([PAPRBEST_BETA[name] for name in COVARIATES])
    alpha = np.log(share / (1 - share)) + 0.5 * rng.normal(size=sizes.size)
    eta = alpha[codes] + (x - means.T[codes]) @ beta
    y = (rng.random(eta.size) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return pd.DataFrame(
        {"id": papers["id"].to_numpy(), "y": y} | {c: x[:, j] for j, c in enumerate(COVARIATES)}
    )


def many_events_comparison(papers: pd.DataFrame, repeat: int) -> None:
    """Our clogit against a pooled statsmodels Logit on the same data, in the same run."""
    import statsmodels.api as sm

    frame = events_panel(papers)
    formula = "y ~ " + " + ".join(COVARIATES)
    counts = frame.groupby("id")["y"].agg(["sum", "size"])
    informative = counts[(counts["sum"] > 0) & (counts["sum"] < counts["size"])]
    kk = np.minimum(informative["sum"], informative["size"] - informative["sum"])
    print(
        f"many events: {len(frame):,} rows, {frame['y'].mean():.1%} events; "
        f"{len(informative):,} informative groups, mean size {informative['size'].mean():.1f}, "
        f"mean events {informative['sum'].mean():.1f}, mean min(k, n - k) {kk.mean():.1f}"
    )
    mg.clogit(formula, frame, group="id", quiet=True)  # first call: kernels from the cache
    ours, walls = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = mg.clogit(formula, frame, group="id", quiet=True)
        walls.append(time.perf_counter() - t0)
        ours.append(res.time_s)
    exog = sm.add_constant(frame[COVARIATES].to_numpy(float))
    endog = frame["y"].to_numpy(float)
    pooled = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sm.Logit(endog, exog).fit(disp=0)
        pooled.append(time.perf_counter() - t0)
    sm_time = statistics.median(pooled)
    print(
        f"  mixedglm.clogit: estimation median {statistics.median(ours):.3f} s "
        f"(min {min(ours):.3f}), whole call median {statistics.median(walls):.3f} s "
        f"(min {min(walls):.3f}); {res.iterations} Newton iterations, "
        f"{res.opt.evaluations} evaluations, loglik {res.loglik:.4f}"
    )
    print(
        f"  statsmodels Logit (pooled, {exog.shape[1]} columns): median {sm_time:.3f} s "
        f"(min {min(pooled):.3f})"
    )
    est, call = statistics.median(ours) / sm_time, statistics.median(walls) / sm_time
    print(
        f"  ratio clogit / pooled Logit (medians): estimation {est:.2f}, whole call {call:.2f}"
        " (target <= 4)"
    )


def many_events_case(seed: int = 1) -> pd.DataFrame:
    """A 683-row group with 300 events drawn with beta = 1 on x ~ N(5, 1), and 50 groups of
    10 rows with 3 events."""
    rng = np.random.default_rng(seed)
    sizes = np.r_[683, np.full(50, 10)]
    starts = np.r_[0, np.cumsum(sizes)]
    g = np.repeat(np.arange(sizes.size), sizes)
    x = rng.normal(size=g.size) + 5.0
    y = np.zeros(g.size)
    for i in range(sizes.size):
        lo, hi = starts[i], starts[i + 1]
        w = np.exp(x[lo:hi] - x[lo:hi].max())
        k = 300 if i == 0 else 3
        y[lo + rng.choice(hi - lo, k, replace=False, p=w / w.sum())] = 1.0
    return pd.DataFrame({"g": g, "y": y, "x": x})


if __name__ == "__main__":
    main()
