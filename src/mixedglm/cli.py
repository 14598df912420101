"""The ``mixedglm`` command line.

``mixedglm fit DATA FORMULA [options]`` fits a mixed model and prints Stata's table. Errors
in the user's model or data print one line and exit with code 2; ``--json -`` writes the
JSON document to standard output (the table then goes to standard error).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="CSV, Parquet or Stata .dta file, or a bundled dataset name")
    p.add_argument("formula", help='model formula, e.g. "y ~ x1 + x2 + (1 | g)"')
    p.add_argument(
        "--if",
        dest="subset",
        metavar="EXPR",
        help='estimation sample condition, e.g. "sample10 == 1"',
    )
    p.add_argument("--level", type=float, default=95.0, help="confidence level (default 95)")
    p.add_argument("--nolog", action="store_true", help="suppress the iteration log")
    p.add_argument("--json", metavar="PATH", help="write results as JSON to PATH ('-': stdout)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of all subcommands."""
    parser = _ArgumentParser(prog="mixedglm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)
    fit = sub.add_parser("fit", help="fit a generalized linear mixed model (melogit / xtlogit, re)")
    _add_common(fit)
    fit.add_argument(
        "--family",
        default="binomial",
        help="binomial (bernoulli), poisson, gaussian, nbinomial, gamma or ordinal "
        "(ologit, oprobit); default binomial",
    )
    fit.add_argument("--link", help="logit, probit, cloglog, log or identity")
    fit.add_argument(
        "--dispersion",
        choices=["mean", "constant"],
        help="nbinomial: mean (NB2, the default) or constant (NB1) dispersion",
    )
    fit.add_argument(
        "--nagq", type=int, help="quadrature points per random effect (default 7; 1 = Laplace)"
    )
    fit.add_argument("--laplace", action="store_true", help="Laplace approximation (nagq 1)")
    fit.add_argument(
        "--method",
        choices=["mvaghermite", "mcaghermite", "laplace"],
        help="integration method (default mvaghermite)",
    )
    fit.add_argument(
        "--curvature",
        choices=["observed", "fisher"],
        help="curvature of mode-curvature grids (fisher = lme4's PIRLS weights)",
    )
    fit.add_argument(
        "--cov", help="random-effects covariance: independent, exchangeable, identity, unstructured"
    )
    fit.add_argument("--offset", help="offset variable")
    fit.add_argument("--exposure", help="exposure variable (its log is the offset)")
    fit.add_argument("--trials", help="binomial trials variable")
    fit.add_argument(
        "--style",
        choices=["me", "xt"],
        default="me",
        help="table layout: me (melogit, default) or xt (xtlogit)",
    )
    fit.add_argument(
        "--reffects",
        metavar="PATH",
        help="write predicted random effects (posterior means and SDs) as CSV",
    )
    fit.set_defaults(run=_run_fit)
    _add_hybrid_commands(sub)
    _add_fe_commands(sub)
    return parser


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


def _run_fit(args: argparse.Namespace) -> None:
    from mixedglm.models.glmm import glmm

    rule = integration_rule(args.method, args.nagq, args.curvature, laplace=args.laplace)
    res = glmm(
        args.formula,
        args.data,
        family=args.family,
        link=args.link,
        nagq=rule.nagq,
        method=rule.method,
        cov=args.cov,
        subset=args.subset,
        offset=args.offset,
        exposure=args.exposure,
        trials=args.trials,
        dispersion=args.dispersion,
        curvature=rule.curvature,
        level=args.level,
        nolog=args.nolog,
    )
    if args.reffects:
        args.outputs.add(args.reffects, res.random_effects().to_csv(), "--reffects")
    summary = _printed_notes_removed(
        res.summary(style=args.style, level=args.level), res.notes_printed
    )
    _emit(args, str(summary), res.to_dict(args.level))


def _add_hybrid_commands(sub) -> None:
    """``mixedglm hybrid`` (xthybrid) and ``mixedglm compare`` (models side by side)."""
    from mixedglm.report.compact import DEFAULT_STATS, STAT_NAMES

    hyb = sub.add_parser(
        "hybrid", help="within/between hybrid or correlated random-effects model (xthybrid)"
    )
    hyb.add_argument("data", help="CSV, Parquet or Stata .dta file, or a bundled dataset name")
    hyb.add_argument("formula", help='outcome and covariates: "y ~ x1 + x2" or "y ~ x1 x2"')
    hyb.add_argument("--cluster", required=True, help="cluster (level-2) variable")
    hyb.add_argument("--use", nargs="+", metavar="VAR", help="variables to decompose")
    hyb.add_argument("--family", default="gaussian", help="outcome family (default gaussian)")
    hyb.add_argument("--link", help="link function (default: the family's canonical link)")
    hyb.add_argument("--cre", action="store_true", help="correlated random effects (Mundlak)")
    hyb.add_argument(
        "--nonlinearities",
        choices=["quadratic", "cubic", "quartic"],
        help="add powers of the cluster means",
    )
    hyb.add_argument("--randomslope", nargs="+", metavar="VAR", help="random slopes on VARs")
    hyb.add_argument(
        "--cov", help="random-effects covariance: independent, exchangeable, identity, unstructured"
    )
    hyb.add_argument(
        "--percentage",
        type=float,
        default=0.0,
        help="decompose only variables with more than this %% of variance within clusters",
    )
    hyb.add_argument("--test", action="store_true", help="tests of the random-effects assumption")
    hyb.add_argument("--full", action="store_true", help="full mixed-model output")
    hyb.add_argument("--nagq", type=int, help="quadrature points per random effect (default 7)")
    hyb.add_argument(
        "--method",
        choices=["mvaghermite", "mcaghermite", "laplace"],
        help="integration method (default mvaghermite)",
    )
    hyb.add_argument("--if", dest="subset", metavar="EXPR", help="estimation sample condition")
    hyb.add_argument("--offset", help="offset variable")
    hyb.add_argument("--exposure", help="exposure variable (its log is the offset)")
    hyb.add_argument("--trials", help="binomial trials variable")
    hyb.add_argument("--level", type=float, default=95.0, help="confidence level (default 95)")
    hyb.add_argument("--iterations", action="store_true", help="show the iteration log")
    hyb.add_argument("--json", metavar="PATH", help="write results as JSON to PATH ('-': stdout)")
    _add_compact_options(hyb, DEFAULT_STATS, STAT_NAMES)
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
        cluster=args.cluster,
        use=args.use,
        family=args.family,
        link=args.link,
        cre=args.cre,
        nonlinearities=args.nonlinearities,
        randomslope=args.randomslope,
        cov=args.cov,
        percentage=args.percentage,
        nagq=args.nagq,
        method=args.method,
        subset=args.subset,
        offset=args.offset,
        exposure=args.exposure,
        trials=args.trials,
        level=args.level,
        iterations=args.iterations,
    )
    text = res.table(
        star=args.star,
        se=args.se,
        t=args.t,
        p=args.p,
        stats=args.stats,
        full=args.full,
        test=args.test,
    )
    _emit(args, text, res.to_dict(args.level))


def _run_compare(args: argparse.Namespace) -> None:
    from mixedglm.report.compact import compare

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
            docs,
            names,
            star=args.star,
            se=args.se,
            t=args.t,
            p=args.p,
            stats=args.stats,
            rename=rename,
        )
    except MixedGLMError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise MixedGLMError(
            f"the documents {', '.join(args.documents)} are not complete results documents "
            f"(an entry is missing or malformed: {type(err).__name__} {err})"
        ) from None
    print(table)


def _add_fe_commands(sub) -> None:
    """``mixedglm clogit`` (xtlogit, fe / clogit) and ``mixedglm xtpoisson`` (xtpoisson, fe)."""
    logit = sub.add_parser("clogit", help="conditional fixed-effects logit (xtlogit, fe / clogit)")
    pois = sub.add_parser("xtpoisson", help="conditional fixed-effects Poisson (xtpoisson, fe)")
    for p in (logit, pois):
        _add_common(p)
        p.add_argument("--group", help="group variable whose effects are conditioned away")
        p.add_argument("--offset", help="offset variable")
        p.set_defaults(run=_run_fe)
    logit.add_argument("--or", dest="eform", action="store_true", help="report odds ratios")
    pois.add_argument("--exposure", help="exposure variable (its log is the offset)")
    pois.add_argument("--irr", dest="eform", action="store_true", help="report rate ratios")


def _run_fe(args: argparse.Namespace) -> None:
    from mixedglm.models.conditional import clogit, xtpoisson_fe

    # Stata prints the notes even with nolog: with the log they come before it (printed by
    # the fit), without it they head the table.
    kwargs = dict(subset=args.subset, offset=args.offset, level=args.level, quiet=args.nolog)
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
        integration_rule(args.method, args.nagq)
        check_percentage(args.percentage, "--percentage")
    targets: dict[str, str] = {}
    for option in ("json", "reffects"):
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
