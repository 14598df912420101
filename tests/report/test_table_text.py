"""Printed tables as exact text, from fixed numbers (no fitting), and their layout against
the seed's Stata output (tests/report/seed_output.txt, copied from the project's seed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixedglm.report.formats import stata_g

from fixed_results import seed_like_results

HERE = Path(__file__).parent


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0729849, ".0729849"),
        (-3.993144, "-3.993144"),
        (0.000256, ".000256"),
        (-4.02058, "-4.02058"),
        (0.108028, ".108028"),
        (-0.0394571, "-.0394571"),
        (0.4294519, ".4294519"),
        (36801.574, "36801.57"),
        (-209470.864, "-209470.9"),
        (1.0, "1"),
        (0.0, "0"),
        (123456789.0, "1.23e+08"),
        (2.2e-6, "2.20e-06"),
        (float("nan"), "."),
        (None, "."),
    ],
)
def test_stata_general_format(value, text):
    assert stata_g(value) == text


def test_xtlogit_table_exact_text():
    expected = (HERE / "expected_xt.txt").read_text().rstrip("\n")
    assert str(seed_like_results().summary(style="xt", ic=False)) == expected


def test_melogit_table_exact_text():
    expected = (HERE / "expected_me.txt").read_text().rstrip("\n")
    assert str(seed_like_results().summary(ic=False)) == expected


def test_estat_ic_exact_text():
    expected = """\
Akaike's information criterion and Bayesian information criterion

-----------------------------------------------------------------------------
       Model |          N   ll(null)  ll(model)      df        AIC        BIC
-------------+---------------------------------------------------------------
           . |    374,334          .  -209470.9      10   418961.7     419070
-----------------------------------------------------------------------------
Note: BIC uses N = number of observations. See [R] BIC note."""
    assert seed_like_results().estat_ic() == expected


def _seed_block(start: str, stop: str) -> list[str]:
    lines = [line.rstrip() for line in (HERE / "seed_output.txt").read_text().splitlines()]
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    j = next(k for k in range(i, len(lines)) if lines[k].startswith(stop))
    return lines[i : j + 1]


def test_xt_layout_matches_the_seed():
    """Same lines, same widths; numbers agree where they do not depend on rounding of the
    inputs (estimates and SEs as printed; intervals are recomputed from rounded inputs)."""
    seed = _seed_block("Random-effects logistic regression", "LR test of rho=0")
    ours = str(seed_like_results().summary(style="xt", ic=False)).splitlines()
    seed_rows = [line for line in seed if "|" in line]
    our_rows = [line for line in ours if "|" in line]
    assert len(seed_rows) == len(our_rows)
    for a, b in zip(seed_rows, our_rows, strict=True):
        # label, coefficient and standard error columns: 15 + 22 characters (the SEs of
        # /lnsig2u and rho are derived from rounded inputs: compare their estimates only)
        width = 26 if a.strip().startswith(("/lnsig2u", "rho")) else 37
        assert a[:width] == b[:width]
    header = [line for line in seed if line and "|" not in line and not line.startswith("-")]
    our_header = [line for line in ours if line and "|" not in line and not line.startswith("-")]
    skip = ("Wald chi2", "LR test")  # depend on the full covariance matrix / pooled fit
    for a, b in zip(header, our_header, strict=True):
        if not any(s in a for s in skip):
            assert a == b
    assert len(seed[0]) == len(ours[0])
