"""Results as plain Python structures for JSON (the schema documented in the README)."""

from __future__ import annotations

import math

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


def coef_records(res, level: float) -> list[dict]:
    ci = res.conf_int(level)
    return [
        {
            "term": name,
            "estimate": clean(res.params[name]),
            "se": clean(res.bse[name]),
            "z": clean(res.zvalues[name]),
            "p": clean(res.pvalues[name]),
            "ci_low": clean(ci.loc[name, "lower"]),
            "ci_high": clean(ci.loc[name, "upper"]),
        }
        for name in res.params.index
    ]


def glmm_to_dict(res, level: float) -> dict:
    """The JSON document of a GLMM fit."""
    group = res.design.group
    family = {"family": res.family.name, "link": res.family.link}
    if res.family.dispersion:
        family["dispersion"] = res.family.dispersion
    if res.family.categories:
        family["categories"] = [_category(c) for c in res.family.categories]
    return {
        "model": "glmm",
        "depvar": res.design.response,
        **family,
        "method": res.method,
        "nagq": res.nagq,
        "nobs": res.nobs,
        "n_params": res.n_params,
        "sample": sample_signature(res.design.row_index, res.design.y),
        "groups": {
            group.name: {"n": group.n_groups, "min": group.min, "avg": group.avg, "max": group.max}
        },
        "loglik": clean(res.loglik),
        "aic": clean(res.aic),
        "bic": clean(res.bic),
        "converged": bool(res.converged),
        "iterations": int(res.iterations),
        "coef": coef_records(res, level),
        "omitted": [{"term": n, "reason": r} for n, r in res.design.omitted],
        "random": [
            {
                "group": vc.group,
                "name": vc.name,
                "estimate": clean(vc.estimate),
                "se": clean(vc.se),
                "ci_low": clean(vc.ci_low),
                "ci_high": clean(vc.ci_high),
            }
            for vc in res.varcomp(level)
        ],
        "sd": [
            {
                "group": row.group,
                "name": name,
                "estimate": clean(row.estimate),
                "se": clean(row.se),
                "ci_low": clean(row.ci_low),
                "ci_high": clean(row.ci_high),
            }
            for name, row in res.sd(level).iterrows()
        ],
        "aux": [
            {
                "name": name,
                "estimate": clean(est),
                "se": clean(se),
                "ci_low": clean(lo),
                "ci_high": clean(hi),
            }
            for name, est, se, lo, hi in res.ancillary(level)
        ],
        "weights": res.weights.to_dict() if res.weights is not None else None,
        "vce": res.vce.to_dict() if res.vce is not None else {"type": "oim"},
        "lr_test": (
            {k: clean(v) for k, v in res.lr_test.to_dict().items()} if res.vce is None else None
        ),
        "wald": {"chi2": clean(res.wald.stat), "df": res.wald.df, "p": clean(res.wald.p)},
        "level": level,
        "notes": list(res.notes),
        "time_s": clean(res.time_s),
    }
