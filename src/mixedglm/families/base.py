"""The family plug-in: what a distribution-and-link gives the rest of the package.

A family is one class in one module (``binomial.py``, ``poisson.py``, ...). It supplies

* its compiled kernels (:meth:`Family.kernels`: log-likelihood and derivatives in ``eta`` and
  in its ancillary parameters, see :mod:`mixedglm.families.dispatch`), which the engines
  reach through :attr:`Family.token`, so only the family in use is compiled;
* the data side: :meth:`check_outcome`, :meth:`log_constant` (the normalising constants),
  :meth:`inverse_link`, :meth:`aux_start`;
* the words and rows of the output: titles as Stata prints them, ancillary parameters.

Defaults here suit a family without ancillary parameters; a family overrides what differs.
A new family needs no change anywhere else: construct it (or :func:`register_family` it
under a name for :func:`~mixedglm.families.get_family`) and pass it as ``family=``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from scipy import special, stats

from mixedglm.families.dispatch import FamilyToken, KernelSet, make_token, no_fisher_weight

Row = tuple[str, float, float, float, float]


def value_examples(values: np.ndarray) -> str:
    shown = ", ".join(f"{v:g}" for v in np.unique(values)[:3])
    return shown + (", ..." if np.unique(values).size > 3 else "")


@dataclass(frozen=True)
class Family:
    """A distribution and link, with the words Stata uses for them.

    ``dispersion`` is a variant of the family (the negative binomial's ``mean`` or
    ``constant``); ``categories`` are an ordinal outcome's categories in order.
    """

    name: str
    link: str
    dispersion: str = ""
    categories: tuple = ()

    links: ClassVar[tuple[str, ...]] = ()
    default_link: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Family]]] = {}  # name -> class, for Family(name, ...)
    words: ClassVar[str] = ""  # Stata's word for the model ("Poisson"); default: the name
    stata_command: ClassVar[bool] = False  # Stata has an me command (no "Mixed-effects GLM")
    xt_command: ClassVar[bool] = False  # and an xt command (xtlogit, xtpoisson...)

    def __new__(cls, name: str = "", *args: object, **kwargs: object) -> Family:
        """``Family("poisson", "log")`` makes the registered family's class (``Poisson``)."""
        if cls is Family and name in cls.registry:
            cls = cls.registry[name]
        return object.__new__(cls)

    # -- compiled side --------------------------------------------------------------------
    def kernels(self) -> KernelSet:
        """The compiled functions of this family and link."""
        raise NotImplementedError(f"family {self.name} has no kernels")

    @property
    def token(self) -> FamilyToken:
        """The handle the engines' compiled code dispatches on (see ``dispatch``)."""
        cls = type(self)
        variant = f"{cls.__module__}.{cls.__qualname__}:{self.link}:{self.dispersion}"
        return make_token(variant, self.kernels())

    @property
    def supports_fisher(self) -> bool:
        """Whether the family has expected-information weights (``curvature="fisher"``)."""
        return self.kernels().fisher_weight is not no_fisher_weight

    # -- parameters -----------------------------------------------------------------------
    @property
    def aux_names(self) -> tuple[str, ...]:
        """Names of the ancillary parameters on the estimation scale."""
        return ()

    @property
    def n_aux(self) -> int:
        return len(self.aux_names)

    def aux_start(self, y: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Start values of the ancillary parameters from the outcome alone."""
        return np.zeros(self.n_aux)

    def ancillary_rows(self, aux: np.ndarray, cov_aux: np.ndarray, level: float) -> list[Row]:
        """Rows ``(label, estimate, se, ci_low, ci_high)`` of the ancillary parameters as
        Stata prints them between the fixed effects and the variance components."""
        return []

    # -- data -----------------------------------------------------------------------------
    def check_outcome(self, y: np.ndarray, trials: np.ndarray | None, name: str) -> None:
        """Raise a :class:`~mixedglm.errors.DataError` naming ``name`` if ``y`` does not
        suit the family."""

    def log_constant(self, y: np.ndarray, trials: np.ndarray) -> np.ndarray:
        """Per-observation normalising constants of the log-likelihood."""
        return np.zeros(np.shape(y))

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        """The mean (for binomial: the probability of success) at ``eta``."""
        eta = np.asarray(eta, dtype=float)
        if self.link == "logit":
            return special.expit(eta)
        if self.link == "probit":
            return special.ndtr(eta)
        if self.link == "cloglog":
            return -np.expm1(-np.exp(eta))
        if self.link == "log":
            return np.exp(eta)
        if self.link == "identity":
            return eta
        raise NotImplementedError(f"family {self.name} must define inverse_link for {self.link}")

    def link_start(self, mean: float, mean_offset: float) -> float:
        """A start value of the constant: the link of the mean outcome, less the offset."""
        if self.link == "logit":
            mean = min(max(mean, 1e-4), 1 - 1e-4)
            return float(np.log(mean / (1 - mean)))
        if self.link == "probit":
            return float(special.ndtri(min(max(mean, 1e-4), 1 - 1e-4)))
        if self.link == "cloglog":
            return float(np.log(-np.log1p(-min(max(mean, 1e-4), 1 - 1e-4))))
        if self.link == "log":
            return float(np.log(max(mean, 1e-8))) - mean_offset
        return mean - mean_offset

    # -- kinds ----------------------------------------------------------------------------
    @property
    def is_binary(self) -> bool:
        return False

    @property
    def is_ordinal(self) -> bool:
        return False

    @property
    def latent_variance(self) -> float | None:
        """Level-1 variance on the latent scale for the ICC; ``None`` where there is none."""
        return None

    def with_categories(self, categories: tuple) -> Family:
        """This family with an ordinal outcome's categories (in order)."""
        return replace(self, categories=tuple(categories))

    # -- words ----------------------------------------------------------------------------
    @property
    def model_words(self) -> str:
        """``logistic``, ``Poisson``, ``nbinomial``... as in Stata's titles."""
        return self.words or self.name

    @property
    def uses_glm_title(self) -> bool:
        """Models Stata fits with ``meglm`` only (no dedicated ``me`` command)."""
        return not self.stata_command

    @property
    def title(self) -> str:
        """meglm's title for the mixed model."""
        if self.uses_glm_title:
            return "Mixed-effects GLM"
        return f"Mixed-effects {self.model_words} regression"

    def header_lines(self) -> list[str]:
        """Lines under the title (left column): ``Family:``/``Link:`` for meglm."""
        if self.uses_glm_title:
            return [f"Family:{self.name:>24}", f"Link:{self.link:>26}"]
        return []

    @property
    def has_xt_layout(self) -> bool:
        """Whether an ``xt`` command prints this model (xtlogit, xtpoisson...)."""
        return self.xt_command

    @property
    def xt_title(self) -> str:
        return f"Random-effects {self.model_words} regression"

    @property
    def pooled_words(self) -> str:
        """What the LR test compares with: ``logistic model``..."""
        return f"{self.model_words} model"


def normal_crit(level: float) -> float:
    """The two-sided normal critical value for a confidence level in percent."""
    return float(stats.norm.ppf(0.5 + level / 200.0))


def log_scale_rows(label: str, word: str, est: float, var: float, level: float) -> list[Row]:
    """``/ln<word>`` on its scale and ``<word>`` = exp of it with the transformed interval,
    as ``nbreg`` prints ``/lnalpha`` and ``alpha``."""
    crit = normal_crit(level)
    se = math.sqrt(var) if var >= 0 else math.nan
    lo, hi = est - crit * se, est + crit * se
    value = math.exp(min(est, 709.0))
    lo_exp, hi_exp = (math.exp(e) if -708.0 < e < 708.0 else math.nan for e in (lo, hi))
    return [(label, est, se, lo, hi), (word, value, value * se, lo_exp, hi_exp)]


def plain_row(label: str, est: float, var: float, level: float) -> Row:
    """A row with a symmetric normal interval."""
    crit = normal_crit(level)
    se = math.sqrt(var) if var >= 0 else math.nan
    return label, est, se, est - crit * se, est + crit * se
