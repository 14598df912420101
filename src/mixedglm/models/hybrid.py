"""Hybrid (within/between) and correlated-random-effects models: Stata's ``xthybrid``.

``hybrid()`` chains: data -> estimation sample and decomposition
(:func:`mixedglm.design.hybrid.decompose`) -> :func:`mixedglm.models.glmm.glmm` on the new columns
-> :class:`~mixedglm.results.hybrid.HybridResults`. No mathematics here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mixedglm.data import DataSource, apply_subset, check_engine, load_data
from mixedglm.design.checks import check_values
from mixedglm.design.hybrid import HybridDecomposition, decompose
from mixedglm.errors import FormulaError, MixedGLMError
from mixedglm.families import get_family
from mixedglm.inference.robust import parse_vce
from mixedglm.models.glmm import glmm
from mixedglm.options import FitOptions, check_level, check_percentage, integration_rule
from mixedglm.results.glmm import GLMMResults
from mixedglm.results.hybrid import HybridResults

__all__ = ["hybrid", "parse_varlist"]

_TOKEN = re.compile(r"^[^\s()\[\]{}*:|^~+\-/=<>!,'\"`]+$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_varlist(formula: str) -> tuple[str, list[str]]:
    """``"y ~ x1 + x2"``, ``"y ~ x1 x2 z"`` or Stata's ``"y x1 x2 z"`` -> ``("y", [x1, ...])``.

    A hybrid model's formula only names variables: the decomposition makes the terms, and
    the random part comes from ``cluster`` and ``randomslope``.
    """
    text = str(formula).strip()
    if text.count("~") > 1:
        raise FormulaError(f"the formula '{text}' has more than one '~'")
    if "~" in text:
        lhs, rhs = (part.strip() for part in text.split("~"))
        tokens = [lhs] if lhs else []
    else:
        lhs, rhs = "", text
        tokens = []
    rhs_tokens = [t for t in re.split(r"[\s+]+", rhs) if t]
    tokens += rhs_tokens
    if "~" in text and not lhs:
        raise FormulaError(f"the formula '{text}' has no outcome before '~'")
    for token in tokens:
        if token.lstrip("-") in ("0", "1", ""):
            raise FormulaError(
                f"'{token}' in '{text}': a hybrid model always has a constant; list variables only"
            )
        if not _TOKEN.match(token):
            hint = " (random effects come from cluster= and randomslope=)" if "|" in text else ""
            raise FormulaError(
                f"'{token}' in '{text}' is not a variable name: a hybrid model's formula lists "
                f"variables, as 'y ~ x1 + x2' or Stata's 'y x1 x2'{hint}"
            )
    if not tokens:
        raise FormulaError("the formula is empty: write 'y ~ x1 + x2' (or Stata's 'y x1 x2')")
    return tokens[0], tokens[1:]


def _quote(name: str) -> str:
    """A column name as formulaic reads it (backticks around anything but an identifier)."""
    return name if _IDENTIFIER.match(name) else f"`{name}`"


def stata_command(
    dec: HybridDecomposition,
    covariates: Sequence[str],
    use: Sequence[str] | None,
    family: str,
    link: str | None,
    randomslope: Sequence[str],
) -> str:
    """The equivalent ``xthybrid`` command line (kept in the results and the JSON)."""
    parts = [f"xthybrid {' '.join([dec.response, *covariates])},"]
    if use is not None:
        parts.append(f"use({' '.join(use)})")
    parts.append(f"family({family})")
    if link:
        parts.append(f"link({link})")
    parts.append(f"clusterid({dec.cluster})")
    if dec.cre:
        parts.append("cre")
    if dec.nonlinearities:
        parts.append(f"nonlinearities({dec.nonlinearities})")
    if randomslope:
        parts.append(f"randomslope({' '.join(randomslope)})")
    if dec.percentage:
        parts.append(f"percentage({dec.percentage:g})")
    return " ".join(parts)


def _glmm_formula(dec: HybridDecomposition, randomslope: Sequence[str]) -> str:
    """The mixed model on the decomposed columns, random slopes on their within parts."""
    slopes = [dec.column_for(v) for v in randomslope]
    if slopes:
        random = f"(1 + {' + '.join(_quote(s) for s in slopes)} || {dec.cluster})"
    else:
        random = f"(1 | {dec.cluster})"
    fixed = " + ".join(_quote(c) for c in dec.columns)
    return f"{_quote(dec.response)} ~ {fixed} + {random}"


def hybrid(
    formula: str,
    data: DataSource,
    *,
    cluster: str,
    use: Sequence[str] | None = None,
    family: str = "gaussian",
    link: str | None = None,
    cre: bool = False,
    nonlinearities: str | None = None,
    randomslope: Sequence[str] | str | None = None,
    cov: str | None = None,
    percentage: float = 0,
    nagq: int | None = None,
    method: str | None = None,
    subset: str | None = None,
    offset: str | None = None,
    exposure: str | None = None,
    trials: str | None = None,
    level: float = 95.0,
    maxiter: int = 100,
    iterations: bool = False,
    quiet: bool = False,
    vce: str | None = None,
    engine: str = "memory",
    scheduler: str | None = None,
    workers: int | None = None,
) -> HybridResults:
    """Fit a hybrid (within/between) or correlated-random-effects model, as ``xthybrid``.

    Parameters
    ----------
    formula
        The outcome and covariates: ``"y ~ x1 + x2"``, ``"y ~ x1 x2"`` or ``"y x1 x2"``.
    data
        A DataFrame, a CSV/Parquet/Stata file or a bundled dataset name.
    cluster
        The cluster (level-2) variable (``clusterid()``).
    use
        Variables to split into within (``W__x``) and between (``B__x``) parts; those not
        among the formula's covariates are added to the model (as in ``xthybrid``'s
        ``use()``). Default: all covariates. The others enter as ``R__x``.
    family, link
        As :func:`mixedglm.glmm` (``gaussian`` by default, as ``xthybrid``).
    cre
        The Mundlak form: ``W__x = x`` and ``D__x`` = the cluster mean, whose coefficient is
        the between minus the within effect.
    nonlinearities
        ``quadratic``, ``cubic`` or ``quartic``: powers of the cluster means as further
        between terms (``B2__x`` ...; ``D2__x`` ... with ``cre``).
    randomslope
        Variables with a random slope (on their ``W__`` column, or ``R__`` if not
        decomposed), independent of the intercept unless ``cov`` says otherwise.
    cov
        Covariance structure of the random effects: ``independent`` (default),
        ``exchangeable``, ``identity`` or ``unstructured``.
    percentage
        Decompose a ``use`` variable only if more than this percentage of its variance is
        within clusters (``floor(100 * (1 - rho))``, see :mod:`mixedglm.design.hybrid`).
    nagq, method
        Quadrature points per random effect (7, as ``meglm``) and integration method.
    subset, offset, exposure, trials, level, maxiter
        As :func:`mixedglm.glmm`.
    iterations
        Show the iteration log (``xthybrid``'s ``iterations``); quiet by default.
    quiet
        Print nothing (no messages about skipped variables, no notes).
    vce
        ``"robust"`` or ``"cluster VAR"``: sandwich standard errors, as :func:`mixedglm.glmm`.
    engine, scheduler, workers
        ``"dask"`` fits on a Dask cluster (implied by a Dask DataFrame; ``data`` may then be
        a directory or glob of Parquet files), as :func:`mixedglm.glmm` (``docs/scale.md``).
    """
    if cluster is None or not str(cluster):
        raise MixedGLMError("hybrid() needs cluster=, the cluster (level-2) variable")
    response, covariates = parse_varlist(formula)
    if isinstance(use, str):
        use = use.split()
    if isinstance(randomslope, str):
        randomslope = randomslope.split()
    randomslope = list(dict.fromkeys(randomslope or []))
    fam = get_family(family, link)  # unknown families and links fail before any work
    choice = parse_vce(vce)
    vce_var = choice[1] if choice is not None and choice[1] != cluster else None
    integration_rule(method, nagq)  # so do impossible integration options
    level, percentage = check_level(level), check_percentage(percentage)
    named = [response, *covariates, *(use or []), *(c for c in (offset, exposure, trials) if c)]
    carry = [c for c in (offset, exposure, trials, vce_var) if c is not None]
    options: dict[str, Any] = dict(
        family=family, link=link, nagq=nagq, method=method, cov=cov, offset=offset,
        exposure=exposure, trials=trials, level=level, maxiter=maxiter,
        nolog=not iterations, quiet=quiet, vce=vce,
    )  # fmt: skip
    if check_engine(engine, data):
        from mixedglm.models.dask_hybrid import hybrid_on_dask  # Dask only when asked for

        res: GLMMResults
        opts = FitOptions(
            subset=subset, offset=offset, exposure=exposure, level=level, maxiter=maxiter,
            nolog=not iterations, quiet=quiet, vce=vce, scheduler=scheduler, workers=workers,
        )  # fmt: skip
        dec, res = hybrid_on_dask(
            data, response, covariates, cluster, lambda d: _glmm_formula(d, randomslope), opts,
            use=use, cre=cre, percentage=percentage, nonlinearities=nonlinearities,
            carry=carry, named=named, family=family, link=link, nagq=nagq, method=method,
            cov=cov, trials=trials,
        )  # fmt: skip
    else:
        frame = apply_subset(load_data(data), subset)
        check_values(frame, [c for c in dict.fromkeys(named) if c in frame.columns])
        dec = decompose(
            frame,
            response,
            covariates,
            cluster,
            use=use,
            cre=cre,
            percentage=percentage,
            nonlinearities=nonlinearities,
            carry=carry,
        )
        if not quiet:
            for note in dec.notes:
                print(note)
        fitted = glmm(_glmm_formula(dec, randomslope), dec.frame, **options)
        assert isinstance(fitted, GLMMResults)  # one grouping factor: the cluster
        res = fitted
    slopes = [dec.column_for(v) for v in randomslope]
    if not quiet:  # the notes of the fit itself (boundary, singular, separation)
        for note in res.notes:
            if note not in res.notes_printed:
                print(note)
    command = stata_command(dec, covariates, use, str(family), link, randomslope)
    return HybridResults(res, dec, str(family).lower(), fam.link, tuple(slopes), command)
