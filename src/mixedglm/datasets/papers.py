"""The bundled ``papers`` dataset: a simulated stand-in for the data of Schunk & Perales (2017).

Schunk & Perales (Stata Journal 17(1), 89-115) illustrate fixed-effects, random-effects, hybrid
(within/between) and random-slope logit models on 374,334 papers (level 1) nested in 14,129
authors (level 2). Their data are not public, so mixedglm ships a deterministic simulation with
the same shape, whose data-generating process is exactly the models they fit, with parameters
taken from their printed estimates. Fitting their four analyses to this data set therefore shows
what they show: similar signs and magnitudes, within effects that differ from between effects,
and a random slope on ``careerstage``. It is *not* the real data; every number below is a choice
documented here.

Columns (one row per paper; ``id`` ascending, papers in publication order within author)

==============  ===========================================================================
id              author id, 1 to 14,129 (int)
topq            1 if the paper is in the top quartile (outcome of the RE/hybrid/RS models)
paprbest        1 for the author's best paper: exactly one per author (outcome of the FE model)
nauthors        number of authors of the paper, 1 to 20
npages          number of pages, 5 to 60
nrefs           number of references, 0 to 200
jifperc         journal impact-factor percentile, 0 to 100, two decimals (float)
careerstage     years since the author's first paper, 0 to 45, non-decreasing within author
female          author is female (constant within author); labels 0 Male, 1 Female
usa             author works in the USA (constant within author); labels 0 No, 1 Yes
socialscience   author is a social scientist (constant within author); labels 0 No, 1 Yes
sample10        author belongs to the 10% sample used for the random-slope model
==============  ===========================================================================

Shape (exact, as in the paper's output): 374,334 papers, 14,129 authors, 1 to 683 papers per
author (mean 26.5), 799 authors with a single paper; ``sample10`` holds 1,413 authors with
37,391 papers. Every author with two or more papers has one ``paprbest == 1`` and at least one
``paprbest == 0``, so a conditional logit drops exactly the 799 single-paper authors.

Data-generating process (all draws from ``numpy.random.Generator(PCG64(seed))``)

1. Papers per author: 799 authors have one paper; the other 13,330 have
   ``2 + floor(k * exp(SIZE_LOGMEAN + SIZE_LOGSD * z))`` papers (draws above 679 redrawn), the
   largest set to 683 and ``k`` (close to 1) chosen so the total is exactly 374,334. The spread
   matches the paper's conditional-logit null log likelihood: the sum of log group sizes is
   36,502 in the shipped data (paper: 36,790).
2. Author traits: ``socialscience ~ Bernoulli(P_SOCIALSCIENCE)``, ``female ~ Bernoulli(P_FEMALE
   + P_FEMALE_SOCSCI_SHIFT * socialscience)``, ``usa ~ Bernoulli(P_USA)``.
3. ``careerstage``: the author's first observed paper is at ``floor(Exponential(mean
   CAREER_START_MEAN))`` years (times ``CAREER_START_FEMALE_FACTOR`` for women; zero with
   probability ``P_CAREER_START_ZERO``); later papers fall uniformly over a span of
   ``CAREER_SPAN_SCALE * sqrt(n_papers) * exp(CAREER_SPAN_LOGSD * z)`` years, capped at 45 in
   total, sorted so career stage rises with paper order.
4. Paper covariates around author-specific means (the between-author spread identifies the
   between effects):

   - ``nauthors = 1 + NegBin(mean l_i, shape NAUTHORS_SHAPE)`` capped at 20, with
     ``l_i = NAUTHORS_BASE * exp(NAUTHORS_AUTHOR_SD * z - NAUTHORS_SOCSCI_EFFECT * socsci)``;
   - ``npages = round(m_i * exp(NPAGES_PAPER_SD * e))`` in [5, 60], with ``m_i = NPAGES_BASE *
     exp(NPAGES_AUTHOR_SD * z) + NPAGES_SOCSCI_EFFECT * socsci``;
   - ``nrefs = NegBin(mean r_i * npages, shape NREFS_SHAPE)`` capped at 200, with references
     per page ``r_i = NREFS_PER_PAGE * exp(NREFS_AUTHOR_SD * z + NREFS_SOCSCI_EFFECT *
     socsci)``;
   - ``jifperc = 100 * Beta(q_i * JIF_CONCENTRATION, (1 - q_i) * JIF_CONCENTRATION)`` rounded
     to 0.01, with ``logit(q_i) = JIF_LOGIT_BASE + JIF_AUTHOR_SD * z + JIF_USA_EFFECT * usa +
     JIF_FEMALE_EFFECT * female``.

5. ``topq ~ Bernoulli(logit^-1(eta))``, the hybrid model with a random slope::

       eta = TOPQ_CONS + sum_k W_k (x_ijk - xbar_ik) + sum_k B_k xbar_ik + sum_c R_c c_i
             + u0_i + u1_i * careerstage_ij,
       u0_i ~ N(0, TOPQ_VAR_U0), u1_i ~ N(0, TOPQ_VAR_U1), independent,

   where ``xbar_ik`` is the author mean of covariate k over all of the author's papers.
   ``TOPQ_WITHIN``, ``TOPQ_BETWEEN``, ``TOPQ_AUTHOR`` are the paper's xthybrid estimates and
   ``TOPQ_VAR_U1`` its melogit random-slope variance. ``TOPQ_CONS`` is the paper's -5.1434,
   which makes about 30% of papers ``topq``: more than a quartile, but the paper's own
   output implies the same (its pooled log likelihood, about -217,470, needs a share of at
   least 26.7%), so the seed's constant is kept.
6. ``paprbest``: the paper maximising ``sum_k PAPRBEST_BETA_k x_ijk + Gumbel noise`` within
   the author, which makes the conditional (fixed-effects) logit with the paper's estimates
   ``PAPRBEST_BETA`` the true model.
7. ``sample10``: 1,413 authors drawn at random, then swapped one at a time with authors of a
   suitable size until they hold exactly 37,391 papers.

The shipped file ``data/papers.npz`` (compressed numpy arrays: papers per author, author-level
columns once per author, ``jifperc`` in integer hundredths) is ``simulate_papers(DEFAULT_SEED)``
exactly; regenerate it with ``python -m mixedglm.datasets.papers --out PATH``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from mixedglm.labels import set_value_labels

__all__ = ["COLUMNS", "DEFAULT_SEED", "load_papers", "simulate_papers", "write_papers"]

DEFAULT_SEED = 6
"""Seed of the shipped file: among seeds 1-8, one whose conditional-logit estimates of ``paprbest``
all lie within one standard error of the paper's (the process itself is unbiased; the choice
only avoids shipping an unluckily atypical draw)."""

COLUMNS = (
    "id",
    "topq",
    "paprbest",
    "nauthors",
    "npages",
    "nrefs",
    "jifperc",
    "careerstage",
    "female",
    "usa",
    "socialscience",
    "sample10",
)
COVARIATES = ("nauthors", "npages", "nrefs", "jifperc", "careerstage")
AUTHOR_COLUMNS = ("female", "usa", "socialscience")
#: Stata-style value labels of the 0/1 author traits (see :mod:`mixedglm.labels`): tables
#: print ``i.female`` levels as ``Female``, as the seed's output does.
VALUE_LABELS = {
    "female": {0: "Male", 1: "Female"},
    "usa": {0: "No", 1: "Yes"},
    "socialscience": {0: "No", 1: "Yes"},
}

# --- shape (exact, from the paper's output) -------------------------------------------------
N_PAPERS = 374_334  # papers (rows)
N_AUTHORS = 14_129  # authors (groups)
N_SINGLE_PAPER_AUTHORS = 799  # dropped by the conditional logit
MAX_PAPERS_PER_AUTHOR = 683  # the largest group
SAMPLE10_AUTHORS = 1_413  # authors in the 10% sample (random-slope model)
SAMPLE10_PAPERS = 37_391  # their papers
SIZE_LOGMEAN = 2.55  # log-normal mean of papers per author beyond 2 (authors with >= 2 papers)
SIZE_LOGSD = 1.2  # its log-scale sd: median ~14, mean 28.0

# --- author traits ---------------------------------------------------------------------------
P_SOCIALSCIENCE = 0.30  # share of social scientists
P_FEMALE = 0.28  # share of women outside the social sciences
P_FEMALE_SOCSCI_SHIFT = 0.12  # ... and the extra share within them
P_USA = 0.30  # share of authors in the USA

# --- careerstage -----------------------------------------------------------------------------
P_CAREER_START_ZERO = 0.45  # share of authors whose first paper is in the data (start at 0)
CAREER_START_MEAN = 5.0  # otherwise: mean years already in the career at the first paper
CAREER_START_FEMALE_FACTOR = 0.7  # women are earlier in their careers
CAREER_SPAN_SCALE = 2.0  # years spanned by an author's papers ~ 2 * sqrt(number of papers)
CAREER_SPAN_LOGSD = 0.35  # log-normal spread of that span
MAX_CAREERSTAGE = 45  # cap on careerstage

# --- paper covariates ------------------------------------------------------------------------
NAUTHORS_BASE = 1.9  # mean number of co-authors (beyond the author) for a typical author
NAUTHORS_AUTHOR_SD = 0.6  # log-scale sd of the author's team-size propensity (between)
NAUTHORS_SOCSCI_EFFECT = 0.2  # social scientists have smaller teams (log scale)
NAUTHORS_SHAPE = 0.8  # negative-binomial shape of co-authors per paper (within)
MAX_NAUTHORS = 20  # cap on nauthors
NPAGES_BASE = 19.0  # typical author's mean number of pages
NPAGES_AUTHOR_SD = 0.1  # log-scale sd of the author's mean pages (between)
NPAGES_SOCSCI_EFFECT = 0.0  # extra pages for social scientists (none)
NPAGES_PAPER_SD = 0.38  # log-scale sd of pages around the author's mean (within)
NPAGES_RANGE = (5, 60)  # npages is clipped to this range
NREFS_PER_PAGE = 1.9  # typical author's references per page
NREFS_AUTHOR_SD = 0.2  # log-scale sd of the author's references per page (between)
NREFS_SOCSCI_EFFECT = 0.15  # social scientists cite more (log scale)
NREFS_SHAPE = 1.5  # negative-binomial shape of references per paper (within)
MAX_NREFS = 200  # cap on nrefs
JIF_LOGIT_BASE = 0.1  # logit of the typical author's mean impact-factor percentile / 100
JIF_AUTHOR_SD = 0.75  # sd of that logit across authors (between)
JIF_USA_EFFECT = 0.4  # US authors publish in higher-impact journals (logit scale)
JIF_FEMALE_EFFECT = -0.15  # women slightly lower (logit scale)
JIF_CONCENTRATION = 8.0  # beta concentration of a paper's percentile around the mean (within)

# --- topq: hybrid logit with a random slope on careerstage (xthybrid / melogit estimates) -----
TOPQ_CONS = -5.1434  # the paper's estimate; ~30% of papers are topq (see the docstring)
TOPQ_WITHIN = {  # W__ coefficients: effect of x_ij - xbar_i
    "nauthors": 0.0824,
    "npages": 0.0106,
    "nrefs": 0.0068,
    "jifperc": 0.0388,
    "careerstage": -0.0534,
}
TOPQ_BETWEEN = {  # B__ coefficients: effect of xbar_i
    "nauthors": 0.0207,
    "npages": 0.0428,
    "nrefs": 0.0071,
    "jifperc": 0.0518,
    "careerstage": -0.0063,
}
TOPQ_AUTHOR = {"female": -0.1694, "usa": 0.1860, "socialscience": 0.0924}  # R__ coefficients
TOPQ_VAR_U0 = 0.43  # random intercept variance (melogit 0.4295; xthybrid 0.4649)
TOPQ_VAR_U1 = 0.00083  # random slope variance on careerstage (melogit 0.0008324)

# --- paprbest: conditional logit (xtlogit, fe estimates) -------------------------------------
PAPRBEST_BETA = {
    "nauthors": 0.1020616,
    "npages": 0.0046791,
    "nrefs": 0.0049528,
    "jifperc": 0.0386638,
    "careerstage": -0.0576846,
}

_DATA_FILE = Path(__file__).with_name("data") / "papers.npz"
_FORMAT_VERSION = 1


def _neg_binomial(rng: np.random.Generator, mean: np.ndarray, shape: float) -> np.ndarray:
    """Gamma-Poisson draws with the given means and gamma shape (variance m + m^2/shape)."""
    return rng.poisson(rng.gamma(shape, mean / shape))


def _group_sizes(rng: np.random.Generator) -> np.ndarray:
    """Papers per author: exactly N_PAPERS in N_AUTHORS groups, max 683, 799 singletons."""
    n_multi = N_AUTHORS - N_SINGLE_PAPER_AUTHORS
    target = N_PAPERS - N_SINGLE_PAPER_AUTHORS - MAX_PAPERS_PER_AUTHOR  # all but the largest
    cap = MAX_PAPERS_PER_AUTHOR - 2
    raw = rng.lognormal(SIZE_LOGMEAN, SIZE_LOGSD, n_multi)
    while (bad := raw > cap - 2).any():  # truncate by redrawing
        raw[bad] = rng.lognormal(SIZE_LOGMEAN, SIZE_LOGSD, int(bad.sum()))
    largest = int(np.argmax(raw))
    rest = np.delete(raw, largest)
    lo, hi = 0.5, 2.0  # bisection for the scale k that makes the total right
    for _ in range(60):
        k = 0.5 * (lo + hi)
        if (2 + np.minimum(np.floor(k * rest), cap - 2)).sum() > target:
            hi = k
        else:
            lo = k
    sizes_rest = (2 + np.minimum(np.floor(lo * rest), cap - 2)).astype(np.int64)
    short = target - int(sizes_rest.sum())  # >= 0, usually 0: hand out the remainder
    if short:
        sizes_rest[rng.choice(sizes_rest.size, short, replace=False)] += 1
    multi = np.insert(sizes_rest, largest, MAX_PAPERS_PER_AUTHOR)
    sizes = np.concatenate([np.ones(N_SINGLE_PAPER_AUTHORS, np.int64), multi])
    return sizes[rng.permutation(N_AUTHORS)]


def _sample10(rng: np.random.Generator, sizes: np.ndarray) -> np.ndarray:
    """1,413 random authors, swapped until they hold exactly 37,391 papers."""
    order = rng.permutation(sizes.size)
    chosen = np.zeros(sizes.size, dtype=bool)
    chosen[order[:SAMPLE10_AUTHORS]] = True
    for _ in range(10_000):
        gap = SAMPLE10_PAPERS - int(sizes[chosen].sum())
        if gap == 0:
            return chosen
        step = int(np.clip(gap, -50, 50))
        inside = np.flatnonzero(chosen)
        inside = inside[rng.permutation(inside.size)]
        outside_sizes = set(sizes[~chosen].tolist())
        for a in inside:
            if int(sizes[a]) + step in outside_sizes:
                candidates = np.flatnonzero(~chosen & (sizes == sizes[a] + step))
                chosen[a] = False
                chosen[candidates[rng.integers(candidates.size)]] = True
                break
        else:
            break
    raise RuntimeError("could not build sample10 with the required number of papers")


def _group_argmax(gid: np.ndarray, score: np.ndarray, n_groups: int) -> np.ndarray:
    """Row index of the maximum score within each group (gid sorted ascending)."""
    order = np.lexsort((score, gid))
    last = np.cumsum(np.bincount(gid, minlength=n_groups)) - 1
    return order[last]


def simulate_papers(seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Simulate the ``papers`` data (see the module docstring for the process and parameters).

    Deterministic for a given seed; ``simulate_papers()`` reproduces the shipped file exactly.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    g = N_AUTHORS

    sizes = _group_sizes(rng)
    gid = np.repeat(np.arange(g), sizes)
    n = gid.size
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    socsci = (rng.random(g) < P_SOCIALSCIENCE).astype(np.int64)
    female = (rng.random(g) < P_FEMALE + P_FEMALE_SOCSCI_SHIFT * socsci).astype(np.int64)
    usa = (rng.random(g) < P_USA).astype(np.int64)
    sample10 = _sample10(rng, sizes).astype(np.int64)

    # careerstage: first observed paper at `start`, the rest spread over `span` years
    start = np.floor(rng.exponential(CAREER_START_MEAN, g))
    start = np.where(female == 1, np.floor(start * CAREER_START_FEMALE_FACTOR), start)
    start = np.where(rng.random(g) < P_CAREER_START_ZERO, 0.0, start)
    start = np.minimum(start, MAX_CAREERSTAGE - 1)
    span = CAREER_SPAN_SCALE * np.sqrt(sizes) * np.exp(CAREER_SPAN_LOGSD * rng.standard_normal(g))
    span = np.minimum(span, MAX_CAREERSTAGE + 1 - start)
    v = rng.random(n)
    v = v[np.lexsort((v, gid))]  # sorted within author (gid is already sorted)
    v[starts] = 0.0
    careerstage = np.minimum(start[gid] + np.floor(span[gid] * v), MAX_CAREERSTAGE)

    z = rng.standard_normal((4, g))
    lam = NAUTHORS_BASE * np.exp(NAUTHORS_AUTHOR_SD * z[0] - NAUTHORS_SOCSCI_EFFECT * socsci)
    nauthors = np.minimum(1 + _neg_binomial(rng, lam[gid], NAUTHORS_SHAPE), MAX_NAUTHORS)

    m_pages = NPAGES_BASE * np.exp(NPAGES_AUTHOR_SD * z[1]) + NPAGES_SOCSCI_EFFECT * socsci
    npages = np.rint(m_pages[gid] * np.exp(NPAGES_PAPER_SD * rng.standard_normal(n)))
    npages = np.clip(npages, *NPAGES_RANGE)

    per_page = NREFS_PER_PAGE * np.exp(NREFS_AUTHOR_SD * z[2] + NREFS_SOCSCI_EFFECT * socsci)
    nrefs = np.minimum(_neg_binomial(rng, per_page[gid] * npages, NREFS_SHAPE), MAX_NREFS)

    q_logit = JIF_LOGIT_BASE + JIF_AUTHOR_SD * z[3] + JIF_USA_EFFECT * usa
    q = 1.0 / (1.0 + np.exp(-(q_logit + JIF_FEMALE_EFFECT * female)))
    jif = rng.beta(q[gid] * JIF_CONCENTRATION, (1.0 - q[gid]) * JIF_CONCENTRATION)
    jifperc = np.rint(jif * 10_000.0) / 100.0  # two decimals, exactly as stored

    x = {
        "nauthors": nauthors.astype(np.float64),
        "npages": npages,
        "nrefs": nrefs.astype(np.float64),
        "jifperc": jifperc,
        "careerstage": careerstage,
    }
    authors = {"female": female, "usa": usa, "socialscience": socsci}

    # topq: hybrid (within/between) logit with random intercept and slope on careerstage
    u0 = np.sqrt(TOPQ_VAR_U0) * rng.standard_normal(g)
    u1 = np.sqrt(TOPQ_VAR_U1) * rng.standard_normal(g)
    eta = TOPQ_CONS + u0[gid] + u1[gid] * careerstage
    for k in COVARIATES:
        xbar = np.bincount(gid, weights=x[k], minlength=g) / sizes
        eta += TOPQ_WITHIN[k] * (x[k] - xbar[gid]) + TOPQ_BETWEEN[k] * xbar[gid]
    for c in AUTHOR_COLUMNS:
        eta += TOPQ_AUTHOR[c] * authors[c][gid]
    topq = (eta + rng.logistic(size=n) > 0).astype(np.int64)

    # paprbest: argmax of x'beta + Gumbel within author -> conditional logit is the true model
    score = sum(PAPRBEST_BETA[k] * x[k] for k in COVARIATES) + rng.gumbel(size=n)
    paprbest = np.zeros(n, dtype=np.int64)
    paprbest[_group_argmax(gid, score, g)] = 1

    data = {
        "id": gid + 1,
        "topq": topq,
        "paprbest": paprbest,
        "nauthors": nauthors.astype(np.int64),
        "npages": npages.astype(np.int64),
        "nrefs": nrefs.astype(np.int64),
        "jifperc": jifperc,
        "careerstage": careerstage.astype(np.int64),
        "female": female[gid],
        "usa": usa[gid],
        "socialscience": socsci[gid],
        "sample10": sample10[gid],
    }
    return pd.DataFrame(data, columns=list(COLUMNS))


def _exact_cast(values: np.ndarray, dtype: type[np.integer], name: str) -> np.ndarray:
    """Cast to a compact integer dtype, refusing to lose information."""
    out = values.astype(dtype)
    if not np.array_equal(out, values):
        raise ValueError(f"column {name!r} does not fit exactly in {np.dtype(dtype).name}")
    return out


def _to_arrays(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Compact storage: author-level columns once per author, jifperc in hundredths."""
    ids = df["id"].to_numpy()
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    if not np.array_equal(ids[first], np.arange(1, first.size + 1)):
        raise ValueError("id must run from 1 to the number of authors, sorted ascending")
    for c in (*AUTHOR_COLUMNS, "sample10"):
        if not np.array_equal(
            np.repeat(df[c].to_numpy()[first], np.diff(np.r_[first, ids.size])), df[c].to_numpy()
        ):
            raise ValueError(f"column {c!r} must be constant within author")
    out: dict[str, np.ndarray] = {
        "format_version": np.array(_FORMAT_VERSION, dtype=np.int8),
        "papers_per_author": _exact_cast(np.diff(np.r_[first, ids.size]), np.int16, "id"),
    }
    for c in (*AUTHOR_COLUMNS, "sample10"):
        out[c] = _exact_cast(df[c].to_numpy()[first], np.int8, c)
    for c in ("topq", "paprbest", "nauthors", "npages", "careerstage"):
        out[c] = _exact_cast(df[c].to_numpy(), np.int8, c)
    out["nrefs"] = _exact_cast(df["nrefs"].to_numpy(), np.int16, "nrefs")
    jif = df["jifperc"].to_numpy()
    hundredths = np.rint(jif * 100.0)
    if not np.array_equal(hundredths / 100.0, jif):
        raise ValueError("column 'jifperc' must have exactly two decimals")
    out["jifperc_x100"] = _exact_cast(hundredths, np.int16, "jifperc")
    return out


def _from_arrays(arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    """Inverse of :func:`_to_arrays`."""
    if int(arrays["format_version"]) != _FORMAT_VERSION:
        raise ValueError(f"unsupported papers file format {int(arrays['format_version'])}")
    sizes = arrays["papers_per_author"].astype(np.int64)
    gid = np.repeat(np.arange(sizes.size), sizes)
    data: dict[str, np.ndarray] = {"id": gid + 1}
    for c in COLUMNS[1:]:
        if c == "jifperc":
            data[c] = arrays["jifperc_x100"].astype(np.float64) / 100.0
        elif c in (*AUTHOR_COLUMNS, "sample10"):
            data[c] = arrays[c].astype(np.int64)[gid]
        else:
            data[c] = arrays[c].astype(np.int64)
    return pd.DataFrame(data, columns=list(COLUMNS))


def write_papers(path: str | Path | IO[bytes], df: pd.DataFrame | None = None) -> None:
    """Write ``df`` (default: ``simulate_papers()``) as a compressed ``.npz`` file."""
    if df is None:
        df = simulate_papers()
    np.savez_compressed(path, **_to_arrays(df))  # type: ignore[arg-type]


def load_papers(path: str | Path | IO[bytes] | None = None) -> pd.DataFrame:
    """Read a file written by :func:`write_papers` (default: the shipped one)."""
    with np.load(_DATA_FILE if path is None else path, allow_pickle=False) as f:
        df = _from_arrays({k: f[k] for k in f.files})
    set_value_labels(df, VALUE_LABELS)
    return df


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m mixedglm.datasets.papers --out PATH [--seed SEED]``."""
    parser = argparse.ArgumentParser(description="Regenerate the bundled papers dataset.")
    parser.add_argument("--out", type=Path, default=_DATA_FILE, help="output .npz file")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    df = simulate_papers(args.seed)
    write_papers(args.out, df)
    print(f"wrote {args.out}: {len(df):,} papers, {df['id'].nunique():,} authors")


if __name__ == "__main__":
    main()
