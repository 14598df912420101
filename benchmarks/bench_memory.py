"""Peak memory of the seed's 12-point RE logit at 10x the seed's size (3.7 million rows).

The 10x data are the bundled ``papers`` repeated ten times with new author ids, built column
by column (no concatenation peak). Prints the process's peak resident memory (Linux
``VmHWM``: Python, numpy, pandas, numba, the data and the fit), the resident memory with the
data loaded just before the ``mg.glmm`` call, and the fit's time. A warm-up fit in another
process fills the numba cache first, so this process only loads the compiled kernels, as a
user's second session does.

Run: ``.venv/bin/python benchmarks/bench_memory.py [--copies 10]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import mixedglm as mg
from mixedglm.datasets import load_dataset

os.environ.setdefault("MIXEDGLM_KERNELS", "compiled")  # compiled kernels, even when cold

FORMULA = (
    "topq ~ nauthors + npages + nrefs + jifperc + careerstage + female + usa + socialscience"
    " + (1 | id)"
)

WARM_UP = f"""
import mixedglm as mg
from mixedglm.datasets import load_dataset
mg.glmm({FORMULA!r}, load_dataset("papers").iloc[:2000], nagq=12, nolog=True, quiet=True)
"""


def status_mb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def replicate(data: pd.DataFrame, copies: int) -> pd.DataFrame:
    """``copies`` copies of ``data`` with new cluster ids, one column at a time."""
    shift = int(data["id"].max()) + 1
    columns = {}
    for name in data.columns:
        values = data[name].to_numpy()
        if name == "id":
            columns[name] = np.concatenate([values + k * shift for k in range(copies)])
        else:
            columns[name] = np.tile(values, copies)
    return pd.DataFrame(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-c", WARM_UP], check=True)
    seed = load_dataset("papers")
    big = replicate(seed, args.copies)
    del seed
    data_mb = big.memory_usage(deep=True).sum() / 2**20
    before = status_mb("VmRSS")
    start = time.perf_counter()
    res = mg.glmm(FORMULA, big, nagq=12, nolog=True, quiet=True)
    wall = time.perf_counter() - start
    peak = status_mb("VmHWM")
    print(f"RE logit, 12 points, {args.copies}x papers")
    print(f"  observations / clusters : {res.nobs:,} / {res.design.group.n_groups:,}")
    print(f"  log likelihood          : {res.loglik:.4f}  (converged: {res.converged})")
    print(f"  data frame              : {data_mb:.0f} MB")
    print(f"  resident before the fit : {before:.0f} MB (data, Python, pandas, numba)")
    print(f"  peak of the process     : {peak:.0f} MB (+{peak - before:.0f} MB in the fit)")
    print(f"  whole call / estimation : {wall:.1f} s / {res.time_s:.1f} s")


if __name__ == "__main__":
    main()
