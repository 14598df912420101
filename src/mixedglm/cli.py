"""The ``mixedglm`` command line.

``mixedglm fit DATA FORMULA [options]`` fits a mixed model and prints Stata's table. Errors
in the user's model or data print one line and exit with code 2; ``--json -`` writes the
JSON document to standard output (the table then goes to standard error).
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
        help="binomial (bernoulli), poisson or gaussian (default binomial)",
    )
    fit.add_argument("--link", help="logit, probit, cloglog, log or identity")
    fit.add_argument(
        "--nagq", type=int, default=7, help="quadrature points per random effect (default 7)"
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
        default="observed",
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
    return parser


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
    from mixedglm.api import glmm

    nagq = 1 if args.laplace else args.nagq
    res = glmm(
        args.formula,
        args.data,
        family=args.family,
        link=args.link,
        nagq=nagq,
        method="laplace" if args.laplace else args.method,
        cov=args.cov,
        subset=args.subset,
        offset=args.offset,
        exposure=args.exposure,
        trials=args.trials,
        curvature=args.curvature,
        level=args.level,
        nolog=args.nolog,
    )
    if args.reffects:
        res.random_effects().to_csv(args.reffects)
    _emit(args, str(res.summary(style=args.style, level=args.level)), res.to_dict(args.level))


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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
