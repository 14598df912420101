"""Benchmark: the design step and the peak memory of the seed's 12-point RE logit on papers.

``mg.glmm("topq ~ nauthors + npages + nrefs + jifperc + careerstage + C(female) + C(usa) +
C(socialscience) + (1 | id)", data, nagq=12)`` on the bundled ``papers`` data (374,334 rows,
14,129 authors) and on 10 copies of it with distinct author ids (3,743,340 rows). Each size
runs in a fresh child process, so that its peak resident memory is its own. Printed per size:
the memory of the data frame, the resident memory after loading it and after a warm-up fit on
2,000 rows (numba's kernels loaded), the time of ``build_design`` alone (median of repeats),
the whole ``mg.glmm`` call against its estimation time ``res.time_s`` (the target: the whole
call within 1.5 times the estimation), and the process's peak resident memory (target at
10x: 1.2 GB).

Run: ``.venv/bin/python benchmarks/bench_design.py [--sizes 1 10] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("MIXEDGLM_KERNELS", "compiled")  # compiled kernels, even when cold

FORMULA = (
    "topq ~ nauthors + npages + nrefs + jifperc + careerstage + C(female) + C(usa) + "
    "C(socialscience) + (1 | id)"
)


def rss_mib() -> float:
    """Current resident memory of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(copies: int, repeat: int) -> dict:
    """Everything measured for one size, in this (fresh) process."""
    import pandas as pd

    import mixedglm as mg
    from mixedglm.datasets import load_dataset
    from mixedglm.design.build import build_design
    from mixedglm.families import Family, get_family
    from mixedglm.formula import parse_formula

    papers = load_dataset("papers")
    if copies > 1:
        step = int(papers["id"].max()) + 1
        data = pd.concat(
            [papers.assign(id=papers["id"] + step * i) for i in range(copies)], ignore_index=True
        )
    else:
        data = papers
    del papers
    out = {
        "rows": len(data),
        "data_mib": data.memory_usage(deep=True).sum() / 2**20,
        "rss_data": rss_mib(),
    }
    mg.glmm(FORMULA, data.iloc[:2000], nagq=12, nolog=True, quiet=True)  # warm-up
    out["rss_warm"] = rss_mib()
    t0 = time.perf_counter()
    res = mg.glmm(FORMULA, data, nagq=12, nolog=True, quiet=True)
    out["call"] = time.perf_counter() - t0
    out["time_s"] = res.time_s
    out["loglik"] = res.loglik
    out["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del res
    family = Family("bernoulli", get_family("binomial").link)
    parsed = parse_formula(FORMULA)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        build_design(parsed, data, family)
        times.append(time.perf_counter() - t0)
    out["design"] = statistics.median(times)
    out["design_min"] = min(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--repeat", type=int, default=3, help="timed build_design calls")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.repeat)))
        return
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start "
        "(cores shared with other work: times are noisy)"
    )
    for copies in args.sizes:
        run = subprocess.run(
            [sys.executable, __file__, "--child", str(copies), "--repeat", str(args.repeat)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"papers x{copies}: {r['rows']:,} rows, data frame {r['data_mib']:.0f} MiB")
        print(
            f"  resident memory: {r['rss_data']:.0f} MiB with the data loaded, "
            f"{r['rss_warm']:.0f} MiB after a warm-up fit, peak {r['peak']:.0f} MiB"
        )
        print(
            f"  build_design: median {r['design']:.3f} s (min {r['design_min']:.3f}) of "
            f"{args.repeat}"
        )
        print(
            f"  mg.glmm whole call {r['call']:.2f} s, estimation time_s {r['time_s']:.2f} s: "
            f"ratio {r['call'] / r['time_s']:.2f} (target <= 1.5); loglik {r['loglik']:.3f}"
        )


if __name__ == "__main__":
    main()
