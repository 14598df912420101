"""The ``mixedglm`` command line.

``mixedglm fit DATA FORMULA [options]`` fits a mixed model and prints Stata's table. Errors
in the user's model or data print one line and exit with code 2; ``--json -`` writes the
JSON document to standard output (the table then goes to standard error).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mixedglm.cli_errors import one_line_warnings, run_reporting_errors
from mixedglm.errors import MixedGLMError, OptionError
from mixedglm.io_safety import OutputSet, check_output_path
from mixedglm.options import check_level, check_percentage, integration_rule


class _ArgumentParser(argparse.ArgumentParser):
    """argparse with usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"mixedglm: error: {message}\n")
        raise SystemExit(2)


def _add_common(
    p: argparse.ArgumentParser,
    formula_help: str = 'model formula, e.g. "y ~ x1 + x2 + (1 | g)"',
    nolog: bool = True,
) -> None:
    """Data, formula, estimation sample, level, iteration log and JSON: every fitting
    command's arguments."""
    p.add_argument("data", help="CSV, Parquet or Stata .dta file, or a bundled dataset name")
    p.add_argument("formula", help=formula_help)
    p.add_argument(
        "--if",
        dest="subset",
        metavar="EXPR",
        help='estimation sample condition, e.g. "sample10 == 1"',
    )
    p.add_argument("--level", type=float, default=95.0, help="confidence level (default 95)")
    if nolog:
        p.add_argument("--nolog", action="store_true", help="suppress the iteration log")
    p.add_argument("--json", metavar="PATH", help="write results as JSON to PATH ('-': stdout)")


def _add_variables(p: argparse.ArgumentParser, *names: str) -> None:
    """``--offset``, ``--exposure``, ``--trials`` (those named)."""
    helps = {
        "offset": "offset variable",
        "exposure": "exposure variable (its log is the offset)",
        "trials": "binomial trials variable",
    }
    for name in names:
        p.add_argument(f"--{name}", help=helps[name])


def _nagq_option(text: str) -> int | dict[str, str]:
    """``--nagq 12``, or per level ``comm=12,comm:mom=7`` (the counts checked by the rule)."""
    if "=" not in text:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"a whole number or factor=points pairs (comm=12,comm:mom=7), not {text!r}"
            ) from None
    out: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(
                f"per-level points are factor=points pairs separated by commas, not {part!r}"
            )
        out[name.strip()] = value.strip()
    return out


def _add_random_part(p: argparse.ArgumentParser, family_default: str) -> None:
    """Family and link, quadrature points, integration method and covariance structure:
    the options of the mixed models (``fit`` and ``hybrid``)."""
    families = (
        "binomial (bernoulli), poisson, gaussian, nbinomial, gamma or ordinal (ologit, oprobit)"
    )
    p.add_argument("--family", default=family_default, help=f"{families}; default {family_default}")
    p.add_argument("--link", help="logit, probit, cloglog, log or identity (default: canonical)")
    p.add_argument(
        "--nagq",
        type=_nagq_option,
        default=None,
        help="quadrature points per random effect (default 7); nested factors: per level, "
        "e.g. comm=12,comm:mom=7",
    )
    p.add_argument(
        "--method",
        choices=["mvaghermite", "mcaghermite", "laplace"],
        help="integration method (default mvaghermite)",
    )
    p.add_argument(
        "--cov", help="random-effects covariance: independent, exchangeable, identity, unstructured"
    )


def _options(args: argparse.Namespace, *names: str) -> dict:
    """The parsed options ``names`` as keyword arguments of the fitting function."""
    return {name: getattr(args, name) for name in names}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of all subcommands."""
    parser = _ArgumentParser(prog="mixedglm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)
    fit = sub.add_parser("fit", help="fit a generalized linear mixed model (melogit / xtlogit, re)")
    _add_common(fit)
    _add_random_part(fit, "binomial")
    fit.add_argument(
        "--dispersion",
        choices=["mean", "constant"],
        help="nbinomial: mean (NB2, the default) or constant (NB1) dispersion",
    )
    fit.add_argument("--laplace", action="store_true", help="Laplace approximation (nagq 1)")
    fit.add_argument(
        "--curvature",
        choices=["observed", "fisher"],
        default=None,
        help="curvature of mode-curvature grids (fisher = lme4's PIRLS weights)",
    )
    _add_variables(fit, "offset", "exposure", "trials")
    fit.add_argument(
        "--style",
        choices=["me", "xt"],
        default="me",
        help="table layout: me (melogit, default) or xt (xtlogit)",
    )
    eform = fit.add_mutually_exclusive_group()
    eform.add_argument(
        "--or", dest="eform", action="store_const", const="or", help="odds ratios (logit links)"
    )
    eform.add_argument(
        "--irr",
        dest="eform",
        action="store_const",
        const="irr",
        help="incidence-rate ratios (Poisson, nbinomial)",
    )
    eform.add_argument(
        "--eform",
        dest="eform",
        action="store_const",
        const="eform",
        help="exponentiated coefficients exp(b)",
    )
    _add_vce(fit)
    fit.add_argument("--reml", action="store_true", help="REML (gaussian models; lmer's default)")
    fit.add_argument("--fweight", metavar="VAR", help="level-1 frequency weights")
    fit.add_argument("--pweight", metavar="VAR", help="level-1 sampling weights")
    _add_group_weight(fit)
    fit.add_argument(
        "--margins",
        metavar="SPEC",
        action="append",
        help='margins after the fit, e.g. "dydx(x1 x2)", "at(x1=0) over(g)", '
        '"predict(mu fixedonly)" (repeatable)',
    )
    fit.add_argument(
        "--reffects",
        metavar="PATH",
        help="write predicted random effects (posterior means and SDs) as CSV; with several "
        "grouping factors one long file with a column 'factor'",
    )
    _add_plot_option(fit, "a caterpillar plot of the predicted random effects")
    _add_dask(fit)
    fit.set_defaults(run=_run_fit)
    _add_hybrid_commands(sub)
    _add_fe_commands(sub)
    lrt = sub.add_parser("lrtest", help="likelihood-ratio test of two nested fits (lrtest)")
    lrt.add_argument("restricted", metavar="A.json", help="one model's --json document")
    lrt.add_argument("full", metavar="B.json", help="the other model's --json document")
    lrt.set_defaults(run=_run_lrtest)
    return parser


def _run_lrtest(args: argparse.Namespace) -> None:
    from mixedglm.inference.lrtest import lrtest

    names = (Path(args.restricted).stem, Path(args.full).stem)
    print(lrtest(args.restricted, args.full, names=names))


def _add_dask(p: argparse.ArgumentParser) -> None:
    """``--dask``, ``--scheduler``, ``--workers``: fit on a Dask cluster (docs/scale.md)."""
    p.add_argument(
        "--dask",
        action="store_true",
        help="fit on Dask (DATA may be a directory or glob of Parquet files)",
    )
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (implies --dask)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of the LocalCluster started without --scheduler (default 2)",
    )


def _engine(args: argparse.Namespace) -> dict:
    """``engine``, ``scheduler`` and ``workers`` from ``--dask``, ``--scheduler``,
    ``--workers`` (a scheduler's address implies ``--dask``)."""
    return {
        "engine": "dask" if args.dask or args.scheduler else "memory",
        "scheduler": args.scheduler,
        "workers": args.workers,
    }


def _emit(args: argparse.Namespace, text: str, document: dict) -> None:
    """Write the output files (all or none), then print the table (to stderr when the JSON
    goes to stdout) and the JSON to stdout if asked."""
    payload = json.dumps(document, indent=2) + "\n"
    if args.json and args.json != "-":
        args.outputs.add(args.json, payload, "--json")
    args.outputs.commit()
    out = sys.stderr if args.json == "-" else sys.stdout
    print(text, file=out)
    if args.json == "-":
        args.stdout.write(payload)


def _printed_notes_removed(summary, printed: tuple[str, ...]):
    """The summary without the notes the fit already printed (each note shows once)."""
    table = summary.table
    kept = tuple(n for n in table.notes_before if n not in printed)
    summary.table = dataclasses.replace(table, notes_before=kept)
    return summary


def _refuse_for_several_factors(args: argparse.Namespace) -> None:
    """Output options the several-factor results do not offer yet: refused before the fit."""
    from mixedglm.formula import parse_formula
    from mixedglm.models.multilevel import needs_multilevel

    if not needs_multilevel(parse_formula(args.formula)):
        return
    given = {"--plot": args.plot, "--style xt": args.style == "xt"}
    asked = [name for name, value in given.items() if value]
    if asked:
        raise OptionError(
            f"{', '.join(asked)}: not available yet with several grouping factors "
            "(the table, --or/--irr/--eform, --margins, --json and --reffects are)"
        )


def _run_fit(args: argparse.Namespace) -> None:
    import pandas as pd

    from mixedglm.models.glmm import glmm
    from mixedglm.results.multilevel import MultilevelResults

    rule = integration_rule(args.method, args.nagq, args.curvature, laplace=args.laplace)
    _refuse_for_several_factors(args)
    res = glmm(
        args.formula,
        args.data,
        nagq=args.nagq,  # as given: None lets several crossed factors default to Laplace
        method="laplace" if rule.is_laplace else args.method,
        curvature=args.curvature,
        **_options(args, "family", "link", "cov", "subset", "offset", "exposure", "trials"),
        **_options(args, "dispersion", "level", "nolog"),
        **_options(args, "vce", "reml", "fweight", "pweight"),
        group_weights=_group_weights(args.group_weight),
        **_engine(args),
    )
    if isinstance(res, MultilevelResults):  # several grouping factors
        if args.reffects:  # one long file: a column 'factor', one row per level
            csv = res.random_effects_long().to_csv(index=False)
            args.outputs.add(args.reffects, csv, "--reffects")
        summary = res.summary(level=args.level, eform=args.eform or False)
        _emit(args, _with_margins(args, res, str(summary)), res.to_dict(args.level))
        return
    if args.reffects:
        effects = res.random_effects()
        if not isinstance(effects, pd.DataFrame):  # lazy, after a fit on Dask
            effects = effects.compute()
        args.outputs.add(args.reffects, effects.to_csv(), "--reffects")
    _write_plot(args, res.plot_random_effects)
    summary = res.summary(style=args.style, level=args.level, eform=args.eform or False)
    text = str(_printed_notes_removed(summary, res.notes_printed))
    _emit(args, _with_margins(args, res, text), res.to_dict(args.level))


def _with_margins(args: argparse.Namespace, res: object, text: str) -> str:
    """``text`` followed by Stata's table of each ``--margins`` asked for."""
    from mixedglm.report.margins import parse_margins_spec, render_margins

    for spec in args.margins or []:
        frame = res.margins(**parse_margins_spec(spec), level=args.level)  # type: ignore[attr-defined]
        text += "\n\n" + render_margins(frame, args.level)
    return text


def _add_group_weight(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--group-weight",
        metavar="GROUP=VAR",
        action="append",
        default=[],
        help="frequency weights of the clusters of GROUP (constant within them); repeatable",
    )


def _group_weights(items: list[str]) -> dict[str, str] | None:
    out = {}
    for item in items:
        group, sep, var = item.partition("=")
        if not sep or not group or not var:
            raise MixedGLMError(f"--group-weight takes GROUP=VAR, not '{item}'")
        out[group] = var
    return out or None


def _add_vce(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--vce",
        metavar="TYPE",
        help='standard errors: oim (default), robust, or "cluster VAR" (sandwich)',
    )


def _add_hybrid_commands(sub) -> None:
    """``mixedglm hybrid`` (xthybrid) and ``mixedglm compare`` (models side by side)."""
    from mixedglm.report.compact import DEFAULT_STATS, STAT_NAMES

    hyb = sub.add_parser(
        "hybrid", help="within/between hybrid or correlated random-effects model (xthybrid)"
    )
    _add_common(hyb, 'outcome and covariates: "y ~ x1 + x2" or "y ~ x1 x2"', nolog=False)
    hyb.add_argument("--cluster", required=True, help="cluster (level-2) variable")
    hyb.add_argument("--use", nargs="+", metavar="VAR", help="variables to decompose")
    _add_random_part(hyb, "gaussian")
    hyb.add_argument("--cre", action="store_true", help="correlated random effects (Mundlak)")
    hyb.add_argument(
        "--nonlinearities",
        choices=["quadratic", "cubic", "quartic"],
        help="add powers of the cluster means",
    )
    hyb.add_argument("--randomslope", nargs="+", metavar="VAR", help="random slopes on VARs")
    hyb.add_argument(
        "--percentage",
        type=float,
        default=0.0,
        help="decompose only variables with more than this %% of variance within clusters",
    )
    hyb.add_argument("--test", action="store_true", help="tests of the random-effects assumption")
    hyb.add_argument("--full", action="store_true", help="full mixed-model output")
    _add_variables(hyb, "offset", "exposure", "trials")
    hyb.add_argument("--iterations", action="store_true", help="show the iteration log")
    _add_plot_option(hyb, "the within and between effects with their intervals")
    _add_vce(hyb)
    _add_compact_options(hyb, DEFAULT_STATS, STAT_NAMES)
    _add_dask(hyb)
    hyb.set_defaults(run=_run_hybrid)

    cmp_ = sub.add_parser(
        "compare", help="several models side by side (from their --json documents)"
    )
    cmp_.add_argument("documents", nargs="+", metavar="JSON", help="results written by --json")
    cmp_.add_argument("--names", nargs="+", metavar="NAME", help="column titles")
    cmp_.add_argument(
        "--rename",
        nargs="+",
        metavar="OLD=NEW",
        default=[],
        help="rename coefficients so rows line up (e.g. W__x=x)",
    )
    _add_compact_options(cmp_, (*DEFAULT_STATS, "N"), STAT_NAMES)
    cmp_.add_argument(
        "--format",
        choices=["text", "markdown", "latex", "html"],
        default="text",
        help="output format (default: Stata's text)",
    )
    cmp_.set_defaults(run=_run_compare)


def _add_compact_options(p: argparse.ArgumentParser, default_stats, stat_names) -> None:
    p.add_argument("--star", action="store_true", help="stars for p<.05, p<.01, p<.001")
    p.add_argument("--se", action="store_true", help="standard errors below the estimates")
    p.add_argument("--t", action="store_true", help="z statistics below the estimates")
    p.add_argument("--p", action="store_true", help="p-values below the estimates")
    p.add_argument(
        "--stats",
        nargs="*",
        choices=list(stat_names),
        default=list(default_stats),
        help=f"statistics to show (default: {' '.join(default_stats)})",
    )


def _run_hybrid(args: argparse.Namespace) -> None:
    from mixedglm.models.hybrid import hybrid

    res = hybrid(
        args.formula,
        args.data,
        **_options(args, "cluster", "use", "family", "link", "cre", "nonlinearities"),
        **_options(args, "randomslope", "cov", "percentage", "nagq", "method", "subset"),
        **_options(args, "offset", "exposure", "trials", "level", "iterations"),
        vce=args.vce,
        **_engine(args),
    )
    table = _options(args, "star", "se", "t", "p", "stats", "full", "test")
    text = res.table(**table)
    _write_plot(args, res.plot)
    _emit(args, text, res.to_dict(args.level))


def _add_plot_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--plot",
        metavar="PATH",
        help=f"save {what} to PATH (.png, .pdf, .svg; needs matplotlib)",
    )


def _write_plot(args: argparse.Namespace, make: Callable[[], object]) -> None:
    """Render the model's plot for ``--plot PATH`` (if given); it is written with the other
    outputs, all or none."""
    if getattr(args, "plot", None):
        fig = make()
        image = io.BytesIO()
        fmt = Path(args.plot).suffix.lstrip(".").lower() or "png"
        try:
            fig.savefig(image, format=fmt, dpi=120)  # type: ignore[attr-defined]
        except ValueError as err:  # unknown format
            raise OptionError(f"cannot write the plot '{args.plot}': {err}") from None
        args.outputs.add(args.plot, image.getvalue(), "--plot")


def _run_compare(args: argparse.Namespace) -> None:
    from mixedglm.report.compare import compare

    rename = {}
    for item in args.rename:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise MixedGLMError(f"--rename takes OLD=NEW pairs, not '{item}'")
        rename[old] = new
    docs = []
    for path in args.documents:
        try:
            docs.append(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as err:
            raise MixedGLMError(f"'{path}' is not a JSON results document: {err}") from err
        except UnicodeDecodeError:
            raise MixedGLMError(f"'{path}' is not a text (JSON) file") from None
        if not isinstance(docs[-1], dict) or not isinstance(docs[-1].get("coef"), list):
            raise MixedGLMError(
                f"'{path}' is not a results document (no 'coef' list): write one with --json"
            )
    names = args.names or [Path(p).stem for p in args.documents]
    try:
        table = compare(
            docs, names, rename=rename, **_options(args, "star", "se", "t", "p", "stats")
        )
    except MixedGLMError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise MixedGLMError(
            f"the documents {', '.join(args.documents)} are not complete results documents "
            f"(an entry is missing or malformed: {type(err).__name__} {err})"
        ) from None
    print(getattr(table, f"as_{args.format}")())


def _add_fe_commands(sub) -> None:
    """``mixedglm clogit`` (xtlogit, fe / clogit) and ``mixedglm xtpoisson`` (xtpoisson, fe)."""
    logit = sub.add_parser("clogit", help="conditional fixed-effects logit (xtlogit, fe / clogit)")
    pois = sub.add_parser("xtpoisson", help="conditional fixed-effects Poisson (xtpoisson, fe)")
    for p in (logit, pois):
        _add_common(p)
        p.add_argument("--group", help="group variable whose effects are conditioned away")
        _add_variables(p, "offset")
        _add_vce(p)
        p.add_argument(
            "--group-weight",
            metavar="VAR",
            help="frequency weights of the groups (constant within)",
        )
        _add_dask(p)
        p.set_defaults(run=_run_fe)
    logit.add_argument("--or", dest="eform", action="store_true", help="report odds ratios")
    _add_variables(pois, "exposure")
    pois.add_argument("--irr", dest="eform", action="store_true", help="report rate ratios")


def _run_fe(args: argparse.Namespace) -> None:
    from mixedglm.models.conditional import clogit, xtpoisson_fe

    # Stata prints the notes even with nolog: with the log they come before it (printed by
    # the fit), without it they head the table.
    kwargs = dict(
        subset=args.subset,
        offset=args.offset,
        level=args.level,
        quiet=args.nolog,
        vce=args.vce,
        group_weights=args.group_weight.partition("=")[2] or args.group_weight
        if args.group_weight
        else None,
        **_engine(args),
    )
    if args.command == "clogit":
        res = clogit(args.formula, args.data, args.group, or_=args.eform, **kwargs)
    else:
        res = xtpoisson_fe(
            args.formula, args.data, args.group, exposure=args.exposure, irr=args.eform, **kwargs
        )
    _emit(args, str(res.summary(notes=args.nolog)), res.to_dict(args.level))


def _check_options(args: argparse.Namespace) -> None:
    """Options checked before any data are read: the level, the integration rule, the
    output paths (that they can be written and do not overwrite the data)."""
    if hasattr(args, "level"):
        args.level = check_level(args.level, "--level")
    if args.command == "fit":
        integration_rule(args.method, args.nagq, args.curvature, laplace=args.laplace)
    if args.command == "hybrid":
        if isinstance(args.nagq, dict):
            raise OptionError("--nagq per level is for nested grouping factors (command fit)")
        integration_rule(args.method, args.nagq)
        check_percentage(args.percentage, "--percentage")
    targets: dict[str, str] = {}
    for option in ("json", "reffects", "plot"):
        path = getattr(args, option, None)
        if not path or (option == "json" and path == "-"):
            continue
        check_output_path(path, f"--{option}")
        resolved = os.path.realpath(path)
        inputs = [getattr(args, "data", None), *(getattr(args, "documents", None) or [])]
        if any(i and os.path.realpath(str(i)) == resolved for i in inputs):
            raise OptionError(f"--{option} '{path}' is an input file: it would be overwritten")
        if resolved in targets:
            raise OptionError(f"--{option} and --{targets[resolved]} name the same file '{path}'")
        targets[resolved] = option


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], None] = args.run
    args.stdout = sys.stdout
    args.outputs = OutputSet()
    stdout_is_json = getattr(args, "json", None) == "-"

    def work() -> None:
        _check_options(args)
        with contextlib.redirect_stdout(sys.stderr) if stdout_is_json else contextlib.nullcontext():
            run(args)

    with one_line_warnings():
        return run_reporting_errors(work)


if __name__ == "__main__":
    raise SystemExit(main())
