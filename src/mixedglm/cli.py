"""The ``mixedglm`` command line.

``mixedglm fit DATA FORMULA [options]`` fits a mixed model and prints Stata's table. Errors
in the user's model or data print one line and exit with code 2; ``--json -`` writes the
JSON document to standard output (the table then goes to standard error).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from mixedglm.errors import ConvergenceWarning, MixedGLMError


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
        "--nagq", type=int, default=None, help="quadrature points per random effect (default 7)"
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
        default=None,
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
    _add_dask(fit)
    fit.set_defaults(run=_run_fit)
    _add_hybrid_commands(sub)
    _add_fe_commands(sub)
    return parser


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


def _emit(args: argparse.Namespace, text: str, document: dict) -> None:
    """Print the table (to stderr when the JSON goes to stdout) and write the JSON."""
    out = sys.stderr if args.json == "-" else sys.stdout
    print(text, file=out)
    if args.json:
        payload = json.dumps(document, indent=2)
        if args.json == "-":
            args.stdout.write(payload + "\n")
        else:
            Path(args.json).write_text(payload + "\n")


def _run_fit(args: argparse.Namespace) -> None:
    from mixedglm.models.glmm import glmm

    if args.laplace and args.method not in (None, "laplace"):
        raise MixedGLMError(f"--laplace conflicts with --method {args.method}: give one of them")
    res = glmm(
        args.formula,
        args.data,
        family=args.family,
        link=args.link,
        nagq=args.nagq,
        method="laplace" if args.laplace else args.method,
        cov=args.cov,
        subset=args.subset,
        offset=args.offset,
        exposure=args.exposure,
        trials=args.trials,
        dispersion=args.dispersion,
        curvature=args.curvature,
        level=args.level,
        nolog=args.nolog,
        engine="dask" if args.dask or args.scheduler else "memory",
        scheduler=args.scheduler,
        workers=args.workers,
    )
    if args.reffects:
        effects = res.random_effects()
        effects = effects.compute() if hasattr(effects, "compute") else effects
        effects.to_csv(args.reffects)
    _emit(args, str(res.summary(style=args.style, level=args.level)), res.to_dict(args.level))


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
    hyb.add_argument(
        "--nagq", type=int, default=None, help="quadrature points per random effect (default 7)"
    )
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

    docs = []
    for path in args.documents:
        try:
            docs.append(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as err:
            raise MixedGLMError(f"'{path}' is not a JSON results document: {err}") from err
    rename = {}
    for item in args.rename:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise MixedGLMError(f"--rename takes OLD=NEW pairs, not '{item}'")
        rename[old] = new
    names = args.names or [Path(p).stem for p in args.documents]
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], None] = args.run
    args.stdout = sys.stdout
    stdout_is_json = getattr(args, "json", None) == "-"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", ConvergenceWarning)
            with (
                contextlib.redirect_stdout(sys.stderr)
                if stdout_is_json
                else contextlib.nullcontext()
            ):
                run(args)
    except MixedGLMError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        sys.stderr.write(f"mixedglm: error: {first_line}\n")
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as err:
        sys.stderr.write(f"mixedglm: error: {err}\n")
        return 2
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: stop quietly, as Unix tools do
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
