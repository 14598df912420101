"""``make demo``: the seed's analyses on the bundled ``papers`` data, in the seed's layouts.

Each analysis is printed after the Stata command it reproduces, as in the seed document.
"""

from __future__ import annotations

import time

import mixedglm as mg
from mixedglm.datasets import load_dataset

COVARIATES = "nauthors + npages + nrefs + jifperc + careerstage + female + usa + socialscience"


def _banner(title: str, command: str) -> None:
    print()
    print(title)
    print()
    print(f". {command}")
    print()


def random_effects_logit(data) -> mg.api.GLMMResults:
    """Analysis 2: ``xtlogit topq ..., re`` (adaptive quadrature, 12 points)."""
    _banner(
        "Random effects model for highly ranked (top quartile) paper",
        "xtlogit topq nauthors npages nrefs jifperc careerstage i.female i.usa "
        "i.socialscience, nolog re",
    )
    res = mg.glmm(f"topq ~ {COVARIATES} + (1 | id)", data, nagq=12, nolog=True)
    print(res.summary(style="xt"))
    print(f"(estimation took {res.time_s:.2f} s)")
    return res


def main() -> None:
    """Run the demo."""
    start = time.perf_counter()
    data = load_dataset("papers")
    print(f"papers: {len(data):,} papers by {data['id'].nunique():,} authors (simulated; see")
    print("mixedglm.datasets.papers for how it was generated)")
    random_effects_logit(data)
    print()
    print(f"(demo finished in {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
