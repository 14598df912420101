"""Exponentiated coefficients (Stata's ``or``, ``irr`` and ``eform`` options).

The estimate is ``exp(b)``, its standard error ``exp(b) se`` (the delta method, as Stata),
the interval's bounds are exponentiated and z and p are those of ``b``. Only the fixed
effects are transformed; variance components and ancillary parameters are unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mixedglm.errors import MixedGLMError
from mixedglm.families import Family

__all__ = ["eform_notes", "eform_title", "exponentiate"]

_CHOICES = ("or", "irr", "eform")


def _natural(family: Family) -> str:
    """The transform a family's link suggests: odds ratios, rate ratios or plain exp(b)."""
    if (family.is_binary or family.is_ordinal) and family.link == "logit":
        return "or"
    if family.name in ("poisson", "nbinomial") and family.link == "log":
        return "irr"
    return "eform"


def resolve_eform(eform: bool | str | None, family: Family) -> str | None:
    """``True`` -> the family's natural choice; ``"or"``/``"irr"``/``"eform"`` checked
    against the family; ``False``/``None`` -> ``None``."""
    if eform is None or eform is False:
        return None
    if eform is True:
        return _natural(family)
    kind = str(eform).lower()
    if kind not in _CHOICES:
        raise MixedGLMError(f"eform must be True, 'or', 'irr' or 'eform', not '{eform}'")
    if kind == "or" and _natural(family) != "or":
        raise MixedGLMError(
            f"odds ratios (or) need a logit link, not the {family.name} family's {family.link} "
            "link; use eform for exp(b)"
        )
    if kind == "irr" and _natural(family) != "irr":
        raise MixedGLMError(
            f"incidence-rate ratios (irr) are for Poisson and negative binomial models with a log "
            f"link, not {family.name}/{family.link}; use eform for exp(b)"
        )
    return kind


def eform_title(kind: str, style: str = "me") -> str:
    """The coefficient column's title as Stata prints it."""
    if kind == "or":
        return "OR" if style == "xt" else "Odds Ratio"
    if kind == "irr":
        return "IRR"
    return "exp(b)"


def eform_notes(kind: str, has_constant: bool, style: str = "me") -> list[str]:
    """The notes Stata's ``me`` commands print below an exponentiated table."""
    if style == "xt":
        return []
    notes = ["Note: Estimates are transformed only in the first equation."]
    if has_constant and kind in ("or", "irr"):
        what = "baseline odds" if kind == "or" else "baseline incidence rate"
        notes.append(f"Note: _cons estimates {what} (conditional on zero random effects).")
    return notes


def exponentiate(frame: pd.DataFrame, rows: pd.Index | None = None) -> pd.DataFrame:
    """``estimate``, ``se``, ``ci_low``, ``ci_high`` of ``rows`` (default all) on the exp
    scale; ``z`` and ``p`` unchanged."""
    out = frame.copy()
    idx = out.index if rows is None else rows
    expb = np.exp(out.loc[idx, "estimate"].astype(float))
    out.loc[idx, "se"] = expb * out.loc[idx, "se"].astype(float)
    out.loc[idx, "estimate"] = expb
    out.loc[idx, "ci_low"] = np.exp(out.loc[idx, "ci_low"].astype(float))
    out.loc[idx, "ci_high"] = np.exp(out.loc[idx, "ci_high"].astype(float))
    return out
