"""Stata's output for models with several grouping factors: the group summary table, the
fixed effects, one variance block per level (``comm``, ``comm>mom``); and the JSON document."""

from __future__ import annotations

from mixedglm.report.formats import comma_int, fixed
from mixedglm.report.table import CoefTable, HeaderLine, Row
from mixedglm.results.eform import eform_notes, eform_title
from mixedglm.results.serialize import clean, coef_records
from mixedglm.results.tables import (
    _varcomp_blocks,
    coefficient_blocks,
    test_footer,
)


def group_summary_lines(res) -> list[str]:
    """The table Stata prints above the coefficients of a multilevel model."""
    rule = "-" * 76
    lines = [
        rule,
        f"{'':16}|{'No. of':>11}{'Observations per Group':>31}{'Integration':>17}",
        f"{'Group Variable':>15} |{'Groups':>11}{'Minimum':>11}{'Average':>11}{'Maximum':>11}"
        f"{'Points':>11}",
        "-" * 16 + "+" + "-" * 59,
    ]
    for k in res._level_order():
        f = res.factors[k]
        sizes = f.sizes
        name = f.name.split(":")[-1] if res.design.nested else f.name
        lines.append(
            f"{name:>15} |{comma_int(f.n_levels):>11}{comma_int(int(sizes.min())):>11}"
            f"{sizes.mean():>11.1f}{comma_int(int(sizes.max())):>11}"
            f"{res.rule.points(f.name):>11}"
        )
    lines.append(rule)
    return lines


def multilevel_table(res, level: float, eform: str | None = None) -> CoefTable:
    """The :class:`CoefTable` of a :class:`~mixedglm.results.multilevel.MultilevelResults`;
    ``eform`` (``or``, ``irr``, ``eform``) exponentiates the fixed effects."""
    design, fam = res.design, res.family
    base = design.base
    wald = res.wald
    header = [HeaderLine("", "Number of obs", comma_int(res.nobs))]
    header += [HeaderLine(text) for text in fam.header_lines()]
    header.append(HeaderLine())
    header += [HeaderLine(line) for line in group_summary_lines(res)]
    header.append(HeaderLine())
    header.append(HeaderLine(f"Random effects: {design.kind}"))
    if base.binomial_trials:
        header.append(HeaderLine(f"Binomial variable: {base.trials_name}"))
    reml = res.estimator == "REML"  # exact likelihood: no integration method (mixed, reml)
    if res.rule.is_laplace and not reml:
        header.append(HeaderLine(f"Integration method: {'Laplace':>11}"))
    elif not reml:
        counts = [str(res.rule.points(res.factors[k].name)) for k in res._level_order()]
        points = "/".join(counts) if res.rule.levels else str(res.nagq)  # per level: 12/7
        header.append(
            HeaderLine(f"Integration method: {res.rule.method:>11}", "Integration pts.", points)
        )
    header.append(HeaderLine())
    header.append(HeaderLine("", f"Wald chi2({wald.df})", fixed(wald.stat, 2)))
    ll_word = "Log pseudolikelihood" if res.vce is not None else "Log likelihood"
    if reml:
        ll_word = "Log restricted-likelihood"
    header.append(HeaderLine(f"{ll_word} = {res.loglik:.8g}", "Prob > chi2", fixed(wald.p, 4)))
    blocks = coefficient_blocks(res, base, level, eform is not None)
    comps = res.varcomp(level)
    for k in res._level_order():
        name = design.display[k]
        blocks += _varcomp_blocks(name, [c for c in comps if c.group == name], base.response)
    resid = [c for c in comps if c.kind == "resvar"]
    if resid:
        blocks += _varcomp_blocks("", resid, base.response)[1:]
    footer = eform_notes(eform, "_cons" in res.params.index) if eform is not None else []
    if res.vce is None:  # Stata prints no LR test with robust standard errors
        footer.append(test_footer(f"LR test vs. {fam.pooled_words}: ", res.lr_test))
        if res.lr_test.kind == "chi2":
            footer += ["", "Note: LR test is conservative and provided only for reference."]
    return CoefTable(
        title=fam.title.replace(" ML ", " REML ") if reml else fam.title,
        header=tuple(header),
        depvar=base.response,
        blocks=tuple(blocks),
        footer=tuple(footer),
        level=level,
        notes_before=tuple(res.notes),
        coef_name=eform_title(eform) if eform is not None else "Coef.",
        se_title="Robust" if res.vce is not None else "",
        se_note=res.vce.note if res.vce is not None else "",
    )


def multilevel_to_dict(res, level: float) -> dict:
    """The JSON document of a several-factor fit: ``groups`` keyed by factor, every
    ``random`` and ``sd`` entry carrying its ``group``."""
    family = {"family": res.family.name, "link": res.family.link}
    if res.family.dispersion:
        family["dispersion"] = res.family.dispersion
    groups = {}
    for k in res._level_order():
        f = res.factors[k]
        sizes = f.sizes
        groups[f.name] = {
            "label": res.design.display[k],
            "n": f.n_levels,
            "min": int(sizes.min()),
            "avg": float(sizes.mean()),
            "max": int(sizes.max()),
            "nagq": res.rule.points(f.name),
        }
    return {
        "model": "glmm",
        "depvar": res.design.base.response,
        **family,
        "method": res.method,
        "nagq": res.nagq,
        "random_effects": res.design.kind,
        "nobs": res.nobs,
        "n_params": res.n_params,
        "groups": groups,
        "sample": res.sample_signature(),
        "loglik": clean(res.loglik),
        "aic": clean(res.aic),
        "bic": clean(res.bic),
        "converged": bool(res.converged),
        "iterations": int(res.iterations),
        "coef": coef_records(res.estimates(level)),
        "omitted": [{"term": n, "reason": r} for n, r in res.design.base.omitted],
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
                "name": n,
                "estimate": clean(e),
                "se": clean(s),
                "ci_low": clean(lo),
                "ci_high": clean(hi),
            }
            for n, e, s, lo, hi in res.ancillary(level)
        ],
        "vce": res.vce.to_dict() if res.vce is not None else {"type": "oim"},
        "lr_test": (
            {k: clean(v) for k, v in res.lr_test.to_dict().items()} if res.vce is None else None
        ),
        "wald": {"chi2": clean(res.wald.stat), "df": res.wald.df, "p": clean(res.wald.p)},
        "level": level,
        "notes": list(res.notes),
        "time_s": clean(res.time_s),
    }


def sd_table(res, level: float) -> CoefTable:
    """``estat sd``: SDs and correlations, one block per level."""
    from mixedglm.inference.varcomp import VarCompRow

    frame = res.sd(level)
    comps = [
        VarCompRow(r.group, name, r.estimate, r.se, r.ci_low, r.ci_high, r.kind)
        for name, r in frame.iterrows()
    ]
    blocks: list[tuple[Row, ...]] = []
    for k in res._level_order():
        name = res.design.display[k]
        blocks += _varcomp_blocks(
            name, [c for c in comps if c.group == name], res.design.base.response
        )
    resid = [c for c in comps if c.kind == "resvar"]
    if resid:
        blocks += _varcomp_blocks("", resid, res.design.base.response)[1:]
    return CoefTable(
        title="", header=(), depvar=res.design.base.response, blocks=tuple(blocks), level=level
    )
