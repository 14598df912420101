"""Checks of the options every command and function shares, done once at the boundary.

Each check returns the clean value or raises :class:`~mixedglm.errors.OptionError` naming the
option, the value given and the values allowed. The integration options (``method``,
``nagq``, ``curvature``) are checked by :func:`mixedglm.engines.rules.make_rule`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import SupportsInt, cast

from mixedglm.engines.rules import IntegrationRule, make_rule
from mixedglm.errors import MixedGLMError, OptionError

# Stata's limits of set level / level(): 10 to 99.99
LEVEL_MIN = 10.0
LEVEL_MAX = 99.99


def check_level(level: object, name: str = "level") -> float:
    """A confidence level in percent, between 10 and 99.99 as in Stata."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real):
        if isinstance(level, str):
            try:
                return check_level(float(level), name)
            except ValueError:
                pass
        raise OptionError(
            f"{name} must be a number between {LEVEL_MIN:g} and {LEVEL_MAX:g} (percent), "
            f"not {level!r}"
        )
    value = float(level)
    if not math.isfinite(value) or not LEVEL_MIN <= value <= LEVEL_MAX:
        hint = f" (did you mean {value * 100:g}?)" if 0 < value < 1 else ""
        raise OptionError(
            f"{name}={value:g} is outside [{LEVEL_MIN:g}, {LEVEL_MAX:g}]: give the confidence "
            f"level in percent, as Stata's level(){hint}"
        )
    return value


def resolve_level(level: object, default: float) -> float:
    """``level`` checked, or ``default`` when it is None (0 is an error, not the default)."""
    return default if level is None else check_level(level)


def check_maxiter(maxiter: object) -> int:
    """The iteration limit: a whole number of at least 1."""
    message = f"maxiter must be a positive integer, not {maxiter!r}"
    if (
        isinstance(maxiter, bool)
        or not isinstance(maxiter, numbers.Real)
        or not math.isfinite(float(maxiter))
    ):
        raise OptionError(message)
    # int() takes every numbers.Real (int, float, Fraction, NumPy scalars); the ABC's stub
    # just does not declare __int__
    whole = int(cast(SupportsInt, maxiter))
    if float(maxiter) != whole or whole < 1:
        raise OptionError(message)
    return whole


def check_percentage(value: object, name: str = "percentage") -> float:
    """A percentage in [0, 100]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionError(f"{name} must be a number between 0 and 100, not {value!r}")
    out = float(value)
    if not math.isfinite(out) or not 0 <= out <= 100:
        raise OptionError(f"{name}={out:g} is outside [0, 100]")
    return out


def integration_rule(
    method: object = None,
    nagq: object = None,
    curvature: object = None,
    *,
    laplace: bool = False,
    supports_fisher: bool = True,
) -> IntegrationRule:
    """:func:`~mixedglm.engines.rules.make_rule` with the command line's ``--laplace`` flag:
    the flag is ``method='laplace'``, and another method or a number of points with it is a
    conflict (refused, never silently resolved)."""
    if laplace:
        if method is not None and str(method).strip().lower() != "laplace":
            raise OptionError(f"--laplace conflicts with --method {method}: give one of them")
        method = "laplace"
    try:
        return make_rule(method, nagq, curvature, supports_fisher=supports_fisher)
    except OptionError:
        raise
    except MixedGLMError as err:  # make_rule's errors are about options
        raise OptionError(str(err)) from None


@dataclass(frozen=True)
class FitOptions:
    """What a fit on Dask takes from its command, checked there: the estimation sample and
    offset columns, the optimiser's and the output's options, and where to run
    (``scheduler``, ``workers``: :func:`mixedglm.scale.session.dask_client`)."""

    subset: str | None = None
    offset: str | None = None
    exposure: str | None = None
    level: float = 95.0
    maxiter: int = 100
    nolog: bool = False
    quiet: bool = False
    vce: str | None = None
    scheduler: str | None = None
    workers: int | None = None

    @property
    def log(self) -> Callable[[str], None] | None:
        """``print`` for the iteration log; None with ``nolog`` or ``quiet``."""
        return None if self.nolog or self.quiet else print
