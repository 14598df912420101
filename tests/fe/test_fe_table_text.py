"""The printed ``xtlogit, fe`` / ``xtpoisson, fe`` tables as exact text from fixed numbers
(no fitting), against the seed's Stata output (tests/report/seed_output.txt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mixedglm.design.build import GroupInfo
from mixedglm.optim import OptSummary
from mixedglm.results.conditional import ConditionalResults

SEED = Path(__file__).resolve().parents[1] / "report" / "seed_output.txt"

# the seed's xtlogit, fe estimates
NAMES = ("nauthors", "npages", "nrefs", "jifperc", "careerstage")
BETA = [0.1020616, 0.0046791, 0.0049528, 0.0386638, -0.0576846]
SE = [0.0030442, 0.0012776, 0.000256, 0.0006544, 0.0028195]
FACTORS = ("C(female)[Female]", "C(usa)[Yes]", "C(socialscience)[Yes]")
LOGLIK, LR = -33211.053, 7158.64
NOTES = (
    "note: 799 groups (799 obs) dropped because of all positive or all negative outcomes.",
    "note: 1.female omitted because of no within-group variance.",
    "note: 1.usa omitted because of no within-group variance.",
    "note: 1.socialscience omitted because of no within-group variance.",
)


def seed_sizes() -> np.ndarray:
    """13,330 group sizes summing to 373,535, from 2 to 683 (as the seed's sample)."""
    sizes = np.full(13_330, 2, dtype=np.int64)
    sizes[0] = 683
    extra = 373_535 - sizes.sum()
    sizes[2:] += extra // 13_328
    sizes[2 : 2 + extra % 13_328] += 1
    return sizes


def seed_fe_results(**changes) -> ConditionalResults:
    fields = dict(
        kind="logit",
        response="paprbest",
        group=GroupInfo("id", np.arange(13_330), seed_sizes()),
        names=NAMES,
        all_names=NAMES + FACTORS,
        omitted=tuple((n, "no within-group variance") for n in FACTORS),
        params_array=np.array(BETA),
        cov_array=np.diag(np.array(SE) ** 2),
        loglik=LOGLIK,
        loglik_0=LOGLIK - LR / 2,
        opt=OptSummary(True, 4, LOGLIK, 0.0, 0.0, "converged", (), 5),
        time_s=0.5,
        notes=NOTES,
        n_obs_dropped=799,
        n_groups_dropped=799,
    )
    fields.update(changes)
    return ConditionalResults(**fields)


def seed_block() -> list[str]:
    lines = [line.rstrip() for line in SEED.read_text().splitlines()]
    i = next(k for k, line in enumerate(lines) if line.startswith("note: 799 groups"))
    j = next(k for k in range(i, len(lines)) if lines[k].startswith(" Random effects model"))
    return lines[i:j]


def test_xtlogit_fe_matches_the_seed_line_by_line():
    """Every line of the seed's output, character by character, except the last digit of
    interval bounds recomputed from the rounded estimates; then the table's closing rule
    (cut off in the seed's copy of Stata's output)."""
    seed = seed_block()
    ours = str(seed_fe_results().summary()).splitlines()
    assert len(ours) == len(seed) + 1
    assert ours[-1] == "-" * 79
    for a, b in zip(seed, ours, strict=False):
        if b.split("|")[0].strip() in NAMES:
            assert len(a) == len(b)
            assert a[:37] == b[:37]  # label, coefficient, SE
            assert a[46:54] == b[46:54]  # P>|z|
            z_a, lo_a, hi_a = (float(v) for v in a[37:46].split() + a[54:].split())
            z_b, lo_b, hi_b = (float(v) for v in b[37:46].split() + b[54:].split())
            assert abs(z_a - z_b) <= 0.0101
            assert abs(lo_a - lo_b) <= 1.01e-7 and abs(hi_a - hi_b) <= 1.01e-7
        else:
            assert a == b


def test_xtlogit_fe_exact_text_with_odds_ratios():
    expected = """\
Conditional fixed-effects logistic regression   Number of obs     =    373,535
Group variable: id                              Number of groups  =     13,330
                                                Obs per group:
                                                              min =          2
                                                              avg =       28.0
                                                              max =        683
                                                LR chi2(5)        =    7158.64
Log likelihood  = -33211.053                    Prob > chi2       =     0.0000
-------------------------------------------------------------------------------
     paprbest | Odds Ratio   Std. Err.      z    P>|z|     [95% Conf. Interval]
--------------+----------------------------------------------------------------
     nauthors |   1.107452   .0033713    33.53   0.000     1.100864    1.114079
       npages |    1.00469   .0012836     3.66   0.000     1.002177    1.007209
        nrefs |   1.004965   .0002573    19.35   0.000     1.004461    1.005469
      jifperc |   1.039421   .0006802    59.08   0.000     1.038089    1.040755
  careerstage |   .9439476   .0026615   -20.46   0.000     .9387456    .9491784
              |
       female |
      Female  |          1  (omitted)
              |
          usa |
         Yes  |          1  (omitted)
              |
socialscience |
         Yes  |          1  (omitted)
-------------------------------------------------------------------------------"""
    res = seed_fe_results(notes=())
    assert str(res.summary(or_=True)) == expected
    assert str(seed_fe_results(notes=(), eform=True).summary()) == expected


def test_notes_can_be_left_out_and_json_has_the_schema():
    res = seed_fe_results()
    assert str(res.summary(notes=False)).startswith("Conditional fixed-effects logistic")
    doc = res.to_dict()
    assert {
        "model",
        "family",
        "link",
        "nobs",
        "groups",
        "loglik",
        "aic",
        "bic",
        "converged",
        "iterations",
        "coef",
        "omitted",
        "random",
        "lr_test",
        "wald",
        "level",
        "notes",
        "time_s",
    } <= set(doc)
    assert doc["model"] == "clogit" and doc["random"] == []
    assert doc["lr_test"]["df"] == 5 and abs(doc["lr_test"]["stat"] - LR) < 1e-6
    assert doc["groups"] == {"id": {"n": 13_330, "min": 2, "avg": 373_535 / 13_330, "max": 683}}
    assert [c["term"] for c in doc["coef"]] == list(NAMES)
    assert doc["omitted"][0] == {"term": "C(female)[Female]", "reason": "no within-group variance"}
    assert res.bic == -2 * LOGLIK + np.log(373_535) * 5


def test_xtpoisson_fe_exact_text():
    expected = """\
Conditional fixed-effects Poisson regression    Number of obs     =      1,200
Group variable: county                          Number of groups  =        100
                                                Obs per group:
                                                              min =         12
                                                              avg =       12.0
                                                              max =         12
                                                Wald chi2(2)      =     109.00
Log likelihood  = -2345.6789                    Prob > chi2       =     0.0000
------------------------------------------------------------------------------
      deaths |      Coef.   Std. Err.      z    P>|z|     [95% Conf. Interval]
-------------+----------------------------------------------------------------
         uvb |  -.1234567   .0123457   -10.00   0.000    -.1476538   -.0992596
       urban |   .0456789   .0152263     3.00   0.003     .0158359    .0755219
      region |          0  (omitted)
     ln(pop) |          1  (exposure)
------------------------------------------------------------------------------"""
    res = ConditionalResults(
        kind="poisson",
        response="deaths",
        group=GroupInfo("county", np.arange(100), np.full(100, 12)),
        names=("uvb", "urban"),
        all_names=("uvb", "urban", "region"),
        omitted=(("region", "no within-group variance"),),
        params_array=np.array([-0.1234567, 0.0456789]),
        cov_array=np.diag([0.01234567**2, 0.0152263**2]),
        loglik=-2345.6789,
        loglik_0=-2400.0,
        opt=OptSummary(True, 3, -2345.6789, 0.0, 0.0, "converged", (), 4),
        time_s=0.1,
        exposure_name="pop",
    )
    assert str(res.summary()) == expected
