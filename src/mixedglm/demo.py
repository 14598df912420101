"""``make demo``: the seed's analyses on the bundled ``papers`` data, in the seed's layouts.

Each analysis is printed after the Stata command it reproduces, as in the seed document.
"""

from __future__ import annotations

import time

import mixedglm as mg
from mixedglm.data import DataSource
from mixedglm.datasets import load_dataset
from mixedglm.models.conditional import warm_up
from mixedglm.report.compact import DEFAULT_STATS
from mixedglm.report.stata import render_summarize
from mixedglm.results.conditional import ConditionalResults
from mixedglm.results.glmm import GLMMResults
from mixedglm.results.hybrid import HybridResults

USE = ("nauthors", "npages", "nrefs", "jifperc", "careerstage")
COVARIATES = (
    "nauthors + npages + nrefs + jifperc + careerstage + C(female) + C(usa) + C(socialscience)"
)


def _banner(title: str, command: str) -> None:
    print()
    print(title)
    print()
    print(f". {command}")
    print()


SEED_FE_FORMULA = (
    "paprbest ~ nauthors + npages + nrefs + jifperc + careerstage"
    " + C(female) + C(usa) + C(socialscience)"
)


def fe_logit_demo(data: DataSource = "papers") -> ConditionalResults:
    """The seed's first analysis, ``xtlogit paprbest ..., nolog fe``, printed as the seed
    shows it (``C()`` makes female, usa and socialscience factor blocks, as ``i.``)."""
    _banner(
        "A fixed effects model for highest ranked paper",
        "xtlogit paprbest nauthors npages nrefs jifperc careerstage i.female i.usa "
        "i.socialscience, nolog fe",
    )
    loading = warm_up()
    res = mg.clogit(SEED_FE_FORMULA, data, group="id", quiet=True)
    print(res.summary())
    print(
        f"(estimation took {res.time_s:.2f} s; loading the compiled kernels before it, once "
        f"per session, {loading:.2f} s)"
    )
    return res


def random_effects_logit(data) -> GLMMResults:
    """Analysis 2: ``xtlogit topq ..., re`` (adaptive quadrature, 12 points)."""
    _banner(
        "Random effects model for highly ranked (top quartile) paper",
        "xtlogit topq nauthors npages nrefs jifperc careerstage i.female i.usa "
        "i.socialscience, nolog re",
    )
    res = mg.glmm(f"topq ~ {COVARIATES} + (1 | id)", data, nagq=12, nolog=True)
    assert isinstance(res, GLMMResults)  # one grouping factor
    print(res.summary(style="xt", ic=False))
    print(f"(estimation took {res.time_s:.2f} s)")
    return res


DEMO_TITLE = "Hybrid Model for highly ranked (top quartile) paper"
DEMO_COMMAND = (
    ". xthybrid topq female usa socialscience, use(nauthors npages nrefs jifperc careerstage) ///",
    ">         family(binomial) link(logit) clusterid(id) star",
)


def hybrid_demo(data: DataSource = "papers") -> HybridResults:
    """Analysis 3 of the seed: the hybrid logit model of ``topq``, printed as the seed shows
    it (the title, the ``xthybrid`` command line, then its output)."""
    print()
    print(DEMO_TITLE)
    print()
    for line in DEMO_COMMAND:
        print(line)
    start = time.perf_counter()
    res = mg.hybrid(
        "topq ~ female + usa + socialscience",
        data,
        use=["nauthors", "npages", "nrefs", "jifperc", "careerstage"],
        cluster="id",
        family="binomial",
        link="logit",
    )
    wall = time.perf_counter() - start
    print(res.table(star=True, stats=DEFAULT_STATS))
    print(f"(estimation took {res.glmm.time_s:.2f} s; {wall:.2f} s with the data preparation)")
    return res


def random_slope_logit(data) -> GLMMResults:
    """Analysis 4: ``melogit ... if sample10 || id: careerstage`` (7 points, independent),
    then ``estat sd`` and the predicted random effects (``predict, reffects``; ``sum``)."""
    _banner(
        "Random Slopes Model for highly ranked (top quartile) paper (10% sample)",
        "melogit topq nauthors npages nrefs jifperc careerstage i.female i.usa "
        "i.socialscience if sample10 || id: careerstage, nolog",
    )
    res = mg.glmm(
        f"topq ~ {COVARIATES} + (1 + careerstage || id)",
        data,
        subset="sample10 == 1",
        nagq=7,
        nolog=True,
    )
    assert isinstance(res, GLMMResults)  # one grouping factor
    print(res.summary(ic=False))
    print()
    print(". estat sd")
    print(res.estat_sd())
    print()
    print(". predict re1 re2 if e(sample), reffects")
    print("(calculating posterior means of random effects)")
    print(f"(using {res.nagq} quadrature points)")
    effects = res.random_effects(expand=True, se=False)
    print(f"({len(data) - len(effects)} missing values generated)")
    print(". sum re1 re2")
    rows = [
        (f"re{k + 1}", len(col), col.mean(), col.std(), col.min(), col.max())
        for k, (_, col) in enumerate(effects.items())
    ]
    print(render_summarize(rows))
    print(f"(estimation took {res.time_s:.2f} s)")
    return res


def side_by_side(fe, re, hybrid) -> None:
    """The FE, RE and hybrid within/between estimates in one compact table: a covariate's
    FE and RE coefficients and its hybrid within effect share a row."""
    print()
    print("Within (FE, hybrid W__), between (hybrid B__) and random-effects estimates")
    print()
    rename = {f"W__{v}": v for v in USE}
    for v in ("female", "usa", "socialscience"):
        rename[f"C({v})[1]"] = rename[f"R__{v}"] = v
    print(
        mg.compare(
            [fe, re, hybrid],
            ["FE (paprbest)", "RE (topq)", "Hybrid (topq)"],
            star=True,
            stats=["ll", "aic", "bic", "N"],
            rename=rename,
        )
    )


def main() -> None:
    """Run the demo."""
    start = time.perf_counter()
    data = load_dataset("papers")
    print(f"papers: {len(data):,} papers by {data['id'].nunique():,} authors (simulated; see")
    print("mixedglm.datasets.papers for how it was generated)")
    fe = fe_logit_demo(data)
    re = random_effects_logit(data)
    hybrid = hybrid_demo(data)
    random_slope_logit(data)
    side_by_side(fe, re, hybrid)
    print()
    print(f"(demo finished in {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
