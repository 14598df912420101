"""Results as plain Python structures for JSON (the schema documented in the README).

One document per result kind, built here from shared pieces so that every kind carries the
same keys for the same things (``nobs``, ``n_params``, ``groups``, ``loglik``, ``loglik_0``,
``aic``, ``bic``, ``coef``, ``terms``, ``omitted``, ...). The document is the one source of
:func:`mixedglm.compare` and of ``mixedglm compare``.
"""

from __future__ import annotations

import math

import pandas as pd

from mixedglm.inference import TestResult
from mixedglm.inference.lrtest import sample_signature


def clean(value):
    """NaN and infinities become ``None`` (JSON has no NaN); numpy scalars become floats."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return number if math.isfinite(number) else None


def _category(value):
    """An ordinal category as JSON: text stays text, whole numbers become ints."""
    if isinstance(value, str):
        return value
    number = clean(value)
    if isinstance(number, float) and number.is_integer():
        return int(number)
    return number if number is not None else str(value)


def coef_records(estimates: pd.DataFrame) -> list[dict]:
    """``coef`` entries from an estimates frame (:meth:`CoefficientResults.estimates`)."""
    return [
        {"term": name, **{key: clean(value) for key, value in row.items()}}
        for name, row in estimates.iterrows()
    ]


def test_record(test: TestResult) -> dict:
    """A model test as ``{"chi2", "df", "p"}``."""
    return {"chi2": clean(test.stat), "df": test.df, "p": clean(test.p)}


def _interval_record(name: str, estimate, se, lo, hi, **extra) -> dict:
    return {
        **extra,
        "name": name,
        "estimate": clean(estimate),
        "se": clean(se),
        "ci_low": clean(lo),
        "ci_high": clean(hi),
    }


def _document(
    res, *, model: str, family: dict, depvar: str, group, loglik_0: float, sample: str | None
) -> dict:
    """The keys every result kind shares, in the README's order (without the trailing
    ``level``, ``notes`` and ``time_s``); ``sample`` is the estimation sample's signature."""
    return {
        "model": model,
        "depvar": depvar,
        **family,
        "nobs": res.nobs,
        "n_params": res.n_params,
        "sample": sample,
        "groups": {
            group.name: {"n": group.n_groups, "min": group.min, "avg": group.avg, "max": group.max}
        },
        "loglik": clean(res.loglik),
        "loglik_0": clean(loglik_0),
        "aic": clean(res.aic),
        "bic": clean(res.bic),
        "converged": bool(res.converged),
        "iterations": int(res.iterations),
    }


def _trailer(res, level: float) -> dict:
    return {"level": level, "notes": list(res.notes), "time_s": clean(res.time_s)}


def glmm_to_dict(res, level: float) -> dict:
    """The JSON document of a GLMM fit; ``loglik_0`` is the model without random effects."""
    family = {"family": res.family.name, "link": res.family.link}
    if res.family.dispersion:
        family["dispersion"] = res.family.dispersion
    if res.family.categories:
        family["categories"] = [_category(c) for c in res.family.categories]
    family |= {"method": res.method, "nagq": res.nagq}
    design = res.design
    doc = _document(
        res,
        model="glmm",
        family=family,
        depvar=design.response,
        group=design.group,
        loglik_0=res.loglik_pooled,
        sample=sample_signature(design.row_index, design.y),
    )
    return doc | {
        "coef": coef_records(res.estimates(level)),
        "terms": list(design.all_x_names or design.x_names),
        "omitted": [{"term": n, "reason": r} for n, r in design.omitted],
        "random": [
            _interval_record(vc.name, vc.estimate, vc.se, vc.ci_low, vc.ci_high, group=vc.group)
            for vc in res.varcomp(level)
        ],
        "sd": [
            _interval_record(name, r.estimate, r.se, r.ci_low, r.ci_high, group=r.group)
            for name, r in res.sd(level).iterrows()
        ],
        "aux": [
            _interval_record(name, est, se, lo, hi)
            for name, est, se, lo, hi in res.ancillary(level)
        ],
        "weights": res.weights.to_dict() if res.weights is not None else None,
        "vce": res.vce.to_dict() if res.vce is not None else {"type": "oim"},
        "lr_test": (
            {k: clean(v) for k, v in res.lr_test.to_dict().items()} if res.vce is None else None
        ),
        "wald": test_record(res.wald),
        **_trailer(res, level),
    }


def conditional_to_dict(res, level: float, eform_name: str | None) -> dict:
    """The JSON document of a conditional fixed-effects fit (the GLMM schema without random
    effects); ``loglik_0`` is the log-likelihood at ``beta = 0``. With ``eform_name`` the
    ``coef`` records hold ``exp(b)`` (see :meth:`ConditionalResults.estimates`)."""
    family, link = ("bernoulli", "logit") if res.kind == "logit" else ("poisson", "log")
    doc = _document(
        res,
        model="clogit" if res.kind == "logit" else "xtpoisson_fe",
        family={"family": family, "link": link, "method": "conditional", "nagq": None},
        depvar=res.response,
        group=res.group,
        loglik_0=res.loglik_0,
        sample=sample_signature(res.group.labels, res.group.sizes),
    )
    return doc | {
        "groups_dropped": {"n": res.n_groups_dropped, "nobs": res.n_obs_dropped},
        "eform": eform_name,
        "coef": coef_records(res.estimates(level, eform_name is not None)),
        "terms": list(res.all_names),
        "omitted": [{"term": n, "reason": r} for n, r in res.omitted],
        "random": [],
        "aux": [],
        # the header's model test (Stata's e(chi2), e(chi2type)), and each test alone
        "chi2": test_record(res.chi2) | {"type": "LR" if res.kind == "logit" else "Wald"},
        "lr_test": {k: clean(v) for k, v in res.lr_test.to_dict().items()},
        "wald": test_record(res.wald) if res.kind == "poisson" else None,
        **_trailer(res, level),
    }
