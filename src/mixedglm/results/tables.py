"""Build the :class:`~mixedglm.report.table.CoefTable` of a fitted model, as Stata shows it."""

from __future__ import annotations

import re

from mixedglm.inference import TestResult
from mixedglm.inference.varcomp import VarCompRow
from mixedglm.labels import LabelMap, level_label
from mixedglm.report.formats import comma_int, fixed, stata_stat
from mixedglm.report.table import CoefTable, HeaderLine, Row
from mixedglm.results.eform import eform_notes, eform_title

_FACTOR = re.compile(
    r"^(?:C\((?P<c>[^,)]+)[^)]*\)|(?P<v>[A-Za-z_.][A-Za-z0-9_.]*))\[(?P<lev>.*)\]$"
)
FOOTER_WIDTH = 78


def factor_parts(name: str) -> tuple[str, str] | None:
    """``C(female)[1]`` -> ``("female", "1")``; ``region[north]`` -> ``("region", "north")``."""
    match = _FACTOR.match(name)
    if not match:
        return None
    return (match.group("c") or match.group("v")).strip(), match.group("lev")


def coefficient_rows(
    names: list[str],
    estimates: dict[str, tuple[float, ...]],
    omitted: dict[str, str],
    labels: LabelMap | None = None,
) -> list[Row]:
    """Rows of the fixed part with factor variables grouped as Stata does (a blank row, the
    variable's name, then one row per level, shown by its value label when ``labels`` has
    one: see :mod:`mixedglm.labels`)."""
    rows: list[Row] = []
    current_factor = None
    for name in names:
        parts = factor_parts(name)
        if parts is not None:
            factor, level = parts
            if factor != current_factor:
                rows.append(Row("", "blank"))
                rows.append(Row(factor, "factor"))
                current_factor = factor
            label, style = level_label(factor, level, labels), "level"
        else:
            if current_factor is not None and name != "_cons":
                rows.append(Row("", "blank"))
            current_factor = None
            label, style = name, "coef"
        if name in omitted:
            rows.append(Row(label, "level_omitted" if style == "level" else "omitted"))
            continue
        b, se, z, p, lo, hi = estimates[name]
        row = Row(label, "coef", b, se, z, p, lo, hi)
        if style == "level":
            row = Row(label, "level", b, se, z, p, lo, hi)
        rows.append(row)
    return rows


def group_header_lines(group, style: str) -> list[HeaderLine]:
    """Group variable, number of groups and obs per group lines."""
    if style == "xt":
        first = HeaderLine(
            f"Group variable: {group.name}", "Number of groups", comma_int(group.n_groups)
        )
    else:
        first = HeaderLine(
            f"Group variable:{group.name:>16}", "Number of groups", comma_int(group.n_groups)
        )
    return [first]


def obs_per_group_lines(group, left: str = "") -> list[HeaderLine]:
    return [
        HeaderLine(left, "Obs per group:", ""),
        HeaderLine("", f"{'min':>17} ", comma_int(group.min)),
        HeaderLine("", f"{'avg':>17} ", f"{group.avg:.1f}"),
        HeaderLine("", f"{'max':>17} ", comma_int(group.max)),
    ]


def test_footer(
    label: str, test: TestResult, p_decimals: int = 4, compact_large: bool = False
) -> str:
    """``LR test ...: chibar2(01) = 43.39 ... Prob >= chibar2 = 0.0000`` right-aligned to 78."""
    if test.kind == "chibar2":
        left = f"{label}chibar2(01) = "
        right = f"Prob >= chibar2 = {fixed(test.p, p_decimals)}"
    else:
        left = f"{label}chi2({test.df}) = "
        right = f"Prob > chi2 = {fixed(test.p, p_decimals)}"
    if compact_large and test.stat >= 1e4:
        stat = f"{test.stat:.1e}"
    else:
        stat = stata_stat(test.stat)
    left += stat
    pad = max(FOOTER_WIDTH - len(left) - len(right), 2)
    return left + " " * pad + right


def _fixed_estimates(res, level: float, eform: bool = False) -> dict[str, tuple]:
    """``(b, se, z, p, lo, hi)`` per coefficient, from the numbers the JSON holds too."""
    est = res.estimates(level, eform)
    return {name: tuple(float(v) for v in row) for name, row in est.iterrows()}


def coefficient_blocks(res, design, level: float, eform: bool = False) -> list[tuple[Row, ...]]:
    """The fixed effects (and the offset's row), then the ancillary parameters in Stata's
    two blocks: on the estimation scale (``/lnalpha``, ``/cut1``...), then their transforms
    (``alpha``) below a rule."""
    names = list(design.all_x_names or design.x_names)
    rows = coefficient_rows(
        names,
        _fixed_estimates(res, level, eform),
        dict(design.omitted),
        getattr(design, "value_labels", None),
    )
    if design.offset_name or design.exposure_name:
        label = design.offset_name or f"ln({design.exposure_name})"
        rows.append(Row(label, "coef", 1.0, None, None, None, None, None))
    blocks: list[tuple[Row, ...]] = [tuple(rows)]
    ancillary = [
        Row(label, "param", est, se, None, None, lo, hi)
        for label, est, se, lo, hi in res.ancillary(level)
    ]
    for kind in (True, False):
        part = tuple(row for row in ancillary if row.label.startswith("/") == kind)
        if part:
            blocks.append(part)
    return blocks


def glmm_table(res, style: str = "me", level: float = 95.0, eform: str | None = None) -> CoefTable:
    """The table of a :class:`~mixedglm.results.glmm.GLMMResults`; ``eform`` is ``or``,
    ``irr`` or ``eform`` (Stata's options) for exponentiated fixed effects."""
    if style not in ("me", "xt"):
        raise ValueError(f"style must be 'me' (melogit) or 'xt' (xtlogit), not '{style}'")
    if style == "xt" and res.structure.q != 1:
        raise ValueError("style='xt' is for random-intercept models; use style='me'")
    if style == "xt" and not res.family.has_xt_layout:
        raise ValueError(
            f"style='xt' has no Stata counterpart for a {res.family.model_words} mixed model "
            "(xtnbreg's random effects are a different model); use style='me'"
        )
    design, fam = res.design, res.family
    group = design.group
    n_points = res.nagq
    method = res.method if res.method != "laplace" else "Laplace"
    wald = res.wald
    loglik_text = f"{res.loglik:.8g}"
    vce = getattr(res, "vce", None)
    reml = res.method == "REML"
    ll_word = (
        "Log restricted-likelihood"
        if reml
        else ("Log pseudolikelihood" if vce is not None else "Log likelihood")
    )
    header = [HeaderLine("", "Number of obs", comma_int(res.nobs))]
    if style == "xt":
        header += group_header_lines(group, "xt")
        header.append(HeaderLine())
        header += obs_per_group_lines(group, "Random effects u_i ~ Gaussian")
        ll_line = f"{ll_word}  = {loglik_text}"
    else:
        header += [HeaderLine(text) for text in fam.header_lines()]
        header += group_header_lines(group, "me")
        header.append(HeaderLine())
        header += obs_per_group_lines(group)
        ll_line = f"{ll_word} = {loglik_text}"
    header.append(HeaderLine())
    if design.binomial_trials:
        header.append(HeaderLine(f"Binomial variable: {design.trials_name}"))
    if not reml:
        header.append(
            HeaderLine(f"Integration method: {method:>11}", "Integration pts.", str(n_points))
        )
        header.append(HeaderLine())
    header.append(HeaderLine("", f"Wald chi2({wald.df})", fixed(wald.stat, 2)))
    header.append(HeaderLine(ll_line, "Prob > chi2", fixed(wald.p, 4)))

    blocks = coefficient_blocks(res, design, level, eform is not None)
    footer: list[str] = []
    if style == "xt":
        xt = res.xt_params(level)
        if fam.name == "gaussian":
            blocks.append(
                tuple(
                    Row(f"/{k}" if k != "rho" else k, "param", *_est(xt[k]))
                    for k in ("sigma_u", "sigma_e", "rho")
                )
            )
            if vce is None:
                footer.append(test_footer("LR test of sigma_u=0: ", res.lr_test, 3, True))
        else:
            blocks.append((Row("/lnsig2u", "param", *_est(xt["/lnsig2u"])),))
            tail = [Row("sigma_u", "param", *_est(xt["sigma_u"]))]
            if "rho" in xt:
                tail.append(Row("rho", "param", *_est(xt["rho"])))
            blocks.append(tuple(tail))
            word = "rho" if "rho" in xt else "sigma_u"
            if vce is None:
                footer.append(test_footer(f"LR test of {word}=0: ", res.lr_test, 3, True))
    else:
        rows_by_kind = _varcomp_blocks(group.name, res.varcomp(level), design.response)
        blocks += rows_by_kind
        if eform is not None:
            footer += eform_notes(eform, "_cons" in res.params.index, style)
        if vce is None:
            footer.append(test_footer(f"LR test vs. {fam.pooled_words}: ", res.lr_test))
            if res.lr_test.kind == "chi2":
                footer += ["", "Note: LR test is conservative and provided only for reference."]
    title = fam.xt_title if style == "xt" else fam.title
    if reml:
        title = title.replace(" ML ", " REML ")
    notes = list(res.notes)
    return CoefTable(
        title=title,
        header=tuple(header),
        depvar=design.response,
        blocks=tuple(blocks),
        footer=tuple(footer),
        level=level,
        notes_before=tuple(notes),
        coef_name=eform_title(eform, style) if eform is not None else "Coef.",
        se_title="Robust" if vce is not None else "",
        se_note=vce.note if vce is not None else "",
    )


def _varcomp_blocks(group: str, comps, response: str) -> list[tuple[Row, ...]]:
    """Blocks of variance components: variances, then covariances (each under the group's
    name), then the residual variance."""
    variances = [Row(group, "group")]
    covariances = [Row(group, "group")]
    residual = []
    for vc in comps:
        if vc.kind == "resvar":
            name = vc.name.replace("(e)", f"(e.{response})")
            residual.append(
                Row(name, "varcomp", vc.estimate, vc.se, None, None, vc.ci_low, vc.ci_high)
            )
        elif vc.kind in ("cov", "corr"):
            covariances.append(
                Row(vc.name, "varcomp", vc.estimate, vc.se, vc.z, vc.p, vc.ci_low, vc.ci_high)
            )
        else:
            variances.append(
                Row(vc.name, "varcomp", vc.estimate, vc.se, None, None, vc.ci_low, vc.ci_high)
            )
    blocks = [tuple(variances)]
    if len(covariances) > 1:
        blocks.append(tuple(covariances))
    if residual:
        blocks.append(tuple(residual))
    return blocks


def varcomp_table(res, frame, level: float) -> CoefTable:
    """The table of ``estat sd``: SDs and correlations under the group's name."""
    comps = [
        VarCompRow(r.group, name, r.estimate, r.se, r.ci_low, r.ci_high, r.kind)
        for name, r in frame.iterrows()
    ]
    group = res.design.group.name if res.design.group else ""
    blocks = _varcomp_blocks(group, comps, res.design.response)
    return CoefTable(
        title="", header=(), depvar=res.design.response, blocks=tuple(blocks), level=level
    )


def _est(values: tuple[float, float, float, float]) -> tuple:
    est, se, lo, hi = values
    return est, se, None, None, lo, hi
