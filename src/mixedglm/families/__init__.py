"""Families and links: one plug-in class per family (see :mod:`mixedglm.families.base`).

Families as in Stata's ``meglm``: ``bernoulli``/``binomial`` (logit, probit, cloglog),
``poisson`` (log), ``gaussian`` (identity), ``nbinomial`` (log; ``mean`` dispersion, NB2, or
``constant``, NB1, as ``menbreg``'s ``dispersion()``), ``gamma`` (log) and ``ordinal``
(logit, probit, cloglog: ``meologit``, ``meoprobit``). The ancillary parameters sit at the
end of the parameter vector on an unconstrained scale: ``/lnalpha`` (NB2), ``/lndelta``
(NB1), ``/logs`` (gamma: log of the scale s, Var = s mu^2, shape 1/s) and, for ordinal
models, the first cut point followed by the logs of the gaps between cut points.
"""

from __future__ import annotations

from mixedglm.errors import MixedGLMError
from mixedglm.families.base import Family
from mixedglm.families.binomial import Binomial
from mixedglm.families.gamma import Gamma
from mixedglm.families.gaussian import Gaussian
from mixedglm.families.nbinomial import NegativeBinomial
from mixedglm.families.ordinal import Ordinal
from mixedglm.families.poisson import Poisson

_FAMILIES: dict[str, type[Family]] = {
    "bernoulli": Binomial,
    "binomial": Binomial,
    "poisson": Poisson,
    "gaussian": Gaussian,
    "nbinomial": NegativeBinomial,
    "gamma": Gamma,
    "ordinal": Ordinal,
}
# Stata's synonyms (gsem's family-and-link shorthands): name -> (family, link)
_ALIASES = {
    "logit": ("bernoulli", None),
    "logistic": ("bernoulli", None),
    "nbreg": ("nbinomial", None),
    "ologit": ("ordinal", "logit"),
    "oprobit": ("ordinal", "probit"),
    "ocloglog": ("ordinal", "cloglog"),
}
DISPERSIONS = ("mean", "constant")


def register_family(name: str, cls: type[Family]) -> None:
    """Make ``get_family(name)`` return ``cls`` (a plug-in family)."""
    _FAMILIES[name.lower()] = cls


def get_family(
    name: str | Family = "binomial", link: str | None = None, dispersion: str | None = None
) -> Family:
    """The :class:`Family` for ``name`` and ``link`` (default: the family's canonical link).

    ``name`` may carry Stata's option as in ``family(nbinomial constant)``; ``dispersion``
    (``mean``, the default, or ``constant``) says the same for the negative binomial.
    Stata's synonyms ``logit``, ``nbreg``, ``ologit``, ``oprobit``, ``ocloglog`` are accepted.
    A :class:`Family` instance is returned as it is.
    """
    if isinstance(name, Family):
        if link is not None and link != name.link:
            raise MixedGLMError(f"family {name.name} has link '{name.link}', not '{link}'")
        return name
    if not isinstance(name, str):
        raise MixedGLMError(f"family must be a name such as 'binomial', not {name!r}")
    words = name.lower().split()
    if not words:
        raise MixedGLMError("the family name is empty")
    key, options = words[0], words[1:]
    alias_link = None
    if key in _ALIASES:
        key, alias_link = _ALIASES[key]
    if key not in _FAMILIES:
        raise MixedGLMError(f"unknown family '{name}': use one of {', '.join(sorted(_FAMILIES))}")
    if link is not None and not isinstance(link, str):
        raise MixedGLMError(f"link must be a name such as 'logit', not {link!r}")
    disp = dispersion.lower() if isinstance(dispersion, str) else dispersion
    if options:
        if key != "nbinomial" or len(options) > 1 or options[0] not in DISPERSIONS:
            raise MixedGLMError(
                f"unknown family '{name}': only nbinomial takes an option "
                "('nbinomial mean' or 'nbinomial constant')"
            )
        if disp is not None and disp != options[0]:
            raise MixedGLMError(
                f"family '{name}' conflicts with dispersion='{dispersion}': give one of them"
            )
        disp = options[0]
    if disp is not None and key != "nbinomial":
        raise MixedGLMError(
            f"dispersion= is for the nbinomial family, not '{key}' (use family='nbinomial')"
        )
    if disp is not None and disp not in DISPERSIONS:
        raise MixedGLMError(f"dispersion must be 'mean' or 'constant', not '{dispersion}'")
    cls = _FAMILIES[key]
    if alias_link is not None and link is not None and link.lower() != alias_link:
        raise MixedGLMError(f"family '{name}' implies link '{alias_link}', not '{link}'")
    link_name = (link or alias_link or cls.default_link).lower()
    if link_name not in cls.links:
        raise MixedGLMError(
            f"link '{link_name}' is not available for family '{key}' (use {', '.join(cls.links)})"
        )
    return cls(key, link_name, dispersion=(disp or "mean") if key == "nbinomial" else "")


__all__ = ["Family", "get_family", "register_family"]
