"""Families and links: names, checks of the outcome, and the codes the kernels use.

Families as in Stata's ``meglm``: ``bernoulli``/``binomial`` (logit, probit, cloglog),
``poisson`` (log), ``gaussian`` (identity), ``nbinomial`` (log; ``mean`` dispersion, NB2, or
``constant``, NB1, as ``menbreg``'s ``dispersion()``), ``gamma`` (log) and ``ordinal``
(logit, probit, cloglog: ``meologit``, ``meoprobit``). The auxiliary parameters sit at the
end of the parameter vector on an unconstrained scale: ``/lnalpha`` (NB2), ``/lndelta``
(NB1), ``/logs`` (gamma: log of the scale s, Var = s mu^2, shape 1/s) and, for ordinal
models, the first cut point followed by the logs of the gaps between cut points (see
:mod:`mixedglm.families.ordinal`); :meth:`Family.ancillary_rows` reports them on Stata's
scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import special, stats

from mixedglm.errors import DataError, MixedGLMError
from mixedglm.families import kernels as k

LINKS = {
    "logit": k.LOGIT,
    "probit": k.PROBIT,
    "cloglog": k.CLOGLOG,
    "log": k.LOG,
    "identity": k.IDENTITY,
}
_FAMILY_LINKS = {
    "bernoulli": ("logit", ("logit", "probit", "cloglog")),
    "binomial": ("logit", ("logit", "probit", "cloglog")),
    "poisson": ("log", ("log",)),
    "gaussian": ("identity", ("identity",)),
    "nbinomial": ("log", ("log",)),
    "gamma": ("log", ("log",)),
    "ordinal": ("logit", ("logit", "probit", "cloglog")),
}
# Stata's synonyms (gsem's family-and-link shorthands): name -> (family, link, dispersion)
_ALIASES = {
    "logit": ("bernoulli", None, None),
    "logistic": ("bernoulli", None, None),
    "nbreg": ("nbinomial", None, None),
    "ologit": ("ordinal", "logit", None),
    "oprobit": ("ordinal", "probit", None),
    "ocloglog": ("ordinal", "cloglog", None),
}
DISPERSIONS = ("mean", "constant")
_LINK_WORDS = {"logit": "logistic", "probit": "probit", "cloglog": "complementary log-log"}
_ORDINAL_WORDS = {"logit": "ologit", "probit": "oprobit", "cloglog": "ocloglog"}
_LATENT_VARIANCE = {"logit": math.pi**2 / 3.0, "probit": 1.0, "cloglog": math.pi**2 / 6.0}


@dataclass(frozen=True)
class Family:
    """A distribution and link, with the words Stata uses for them.

    ``dispersion`` is the negative binomial's parameterisation (``mean`` or ``constant``);
    ``categories`` are an ordinal outcome's categories in order (set from the data by
    :meth:`with_categories`; the outcome is then coded 0, 1, ...).
    """

    name: str
    link: str
    dispersion: str = ""
    categories: tuple = ()

    @property
    def code(self) -> int:
        if self.name == "nbinomial":
            return k.NBINOM1 if self.dispersion == "constant" else k.NBINOM2
        return {
            "bernoulli": k.BINOMIAL,
            "binomial": k.BINOMIAL,
            "poisson": k.POISSON,
            "gaussian": k.GAUSSIAN,
            "gamma": k.GAMMA,
            "ordinal": k.ORDINAL,
        }[self.name]

    @property
    def link_code(self) -> int:
        return LINKS[self.link]

    @property
    def n_aux(self) -> int:
        if self.is_ordinal and not self.categories:
            raise MixedGLMError(
                "an ordinal family needs its categories (Family.with_categories) before fitting"
            )
        return k.n_aux_params(self.code, len(self.categories))

    @property
    def aux_names(self) -> tuple[str, ...]:
        """Names of the auxiliary parameters on the estimation scale."""
        if self.is_ordinal:
            return ("cut1", *(f"lngap{j}" for j in range(2, len(self.categories))))
        return {
            "gaussian": ("lnsig_e",),
            "nbinomial": ("lndelta",) if self.dispersion == "constant" else ("lnalpha",),
            "gamma": ("logs",),
        }.get(self.name, ())

    @property
    def is_binary(self) -> bool:
        return self.code == k.BINOMIAL

    @property
    def is_ordinal(self) -> bool:
        return self.name == "ordinal"

    @property
    def model_words(self) -> str:
        """``logistic``, ``probit``, ``Poisson``, ``nbinomial``, ``ologit``... as in Stata."""
        if self.is_binary:
            return _LINK_WORDS[self.link]
        if self.is_ordinal:
            return _ORDINAL_WORDS[self.link]
        return {
            "poisson": "Poisson",
            "gaussian": "linear",
            "nbinomial": "nbinomial",
            "gamma": "gamma",
        }[self.name]

    @property
    def _is_glm_title(self) -> bool:
        """Models Stata fits with ``meglm`` only (no dedicated ``me`` command)."""
        return self.name == "gamma" or (self.is_ordinal and self.link == "cloglog")

    @property
    def title(self) -> str:
        """meglm's title for the mixed model."""
        if self.name == "gaussian":
            return "Mixed-effects ML regression"
        if self._is_glm_title:
            return "Mixed-effects GLM"
        return f"Mixed-effects {self.model_words} regression"

    def header_lines(self) -> list[str]:
        """Lines Stata prints under the title (left column): ``Overdispersion: mean``
        (menbreg), ``Family:``/``Link:`` (meglm)."""
        if self.name == "nbinomial":
            return [f"Overdispersion:{self.dispersion or 'mean':>16}"]
        if self._is_glm_title:
            return [f"Family:{self.name:>24}", f"Link:{self.link:>26}"]
        return []

    @property
    def has_xt_layout(self) -> bool:
        """Whether an ``xt`` command prints this model (xtlogit, xtpoisson, xtologit...)."""
        return self.name in ("bernoulli", "binomial", "poisson", "gaussian") or (
            self.is_ordinal and self.link != "cloglog"
        )

    @property
    def xt_title(self) -> str:
        """xtlogit/xtprobit/xtpoisson/xtologit's title."""
        if self.name == "gaussian":
            return "Random-effects ML regression"
        if self.is_ordinal:
            words = {"logit": "logistic", "probit": "probit"}[self.link]
            return f"Random-effects ordered {words} regression"
        if self.is_binary and self.link == "cloglog":
            return "Random-effects complementary log-log model"
        return f"Random-effects {self.model_words} regression"

    @property
    def pooled_words(self) -> str:
        """What the LR test compares with: ``logistic model``, ``nbinomial model``..."""
        if self.is_binary and self.link == "cloglog":
            return "cloglog model"
        return f"{self.model_words} model"

    @property
    def latent_variance(self) -> float | None:
        """Level-1 variance on the latent scale for the ICC (``rho``); ``None`` where the
        family has none of its own (counts, gamma) and gaussian's is estimated."""
        if self.is_binary or self.is_ordinal:
            return _LATENT_VARIANCE[self.link]
        return None

    def with_categories(self, categories: tuple) -> Family:
        """This ordinal family with the outcome's categories (in order)."""
        return replace(self, categories=tuple(categories))

    def ancillary_rows(
        self, aux: np.ndarray, cov_aux: np.ndarray, level: float
    ) -> list[tuple[str, float, float, float, float]]:
        """Rows ``(label, estimate, se, ci_low, ci_high)`` of the family's ancillary
        parameters as Stata prints them between the fixed effects and the variance
        components (``/lnalpha`` and ``alpha``, ``/logs``, ``/cut1``...). The gaussian
        residual variance is reported with the variance components instead."""
        crit = float(stats.norm.ppf(0.5 + level / 200.0))
        aux = np.asarray(aux, dtype=float)
        cov_aux = np.asarray(cov_aux, dtype=float)

        def row(label: str, est: float, var: float) -> tuple[str, float, float, float, float]:
            se = math.sqrt(var) if var >= 0 else math.nan
            return label, est, se, est - crit * se, est + crit * se

        if self.name == "nbinomial":
            word = "delta" if self.dispersion == "constant" else "alpha"
            log_row = row(f"/ln{word}", float(aux[0]), float(cov_aux[0, 0]))
            _, est, se, lo, hi = log_row
            value = math.exp(min(est, 709.0))
            ends = [math.exp(e) if -708.0 < e < 708.0 else math.nan for e in (lo, hi)]
            return [log_row, (word, value, value * se, *ends)]
        if self.name == "gamma":
            return [row("/logs", float(aux[0]), float(cov_aux[0, 0]))]
        if self.is_ordinal:
            from mixedglm.families.ordinal import cutpoint_jacobian, cutpoints

            jac = cutpoint_jacobian(aux)
            cov = jac @ cov_aux @ jac.T
            return [
                row(f"/cut{j + 1}", float(c), float(cov[j, j]))
                for j, c in enumerate(cutpoints(aux))
            ]
        return []

    def log_constant(self, y: np.ndarray, trials: np.ndarray) -> np.ndarray:
        """Per-observation normalising constants of the log-likelihood."""
        return k.log_constant(self.code, y, trials)

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        """The mean (for binomial: the probability of success) at ``eta``."""
        if self.is_ordinal:
            raise MixedGLMError(
                "an ordinal model has no mean outcome: predict(kind='pr') gives the "
                "probability of each category"
            )
        if self.link == "logit":
            return special.expit(eta)
        if self.link == "probit":
            return special.ndtr(eta)
        if self.link == "cloglog":
            return -np.expm1(-np.exp(eta))
        if self.link == "log":
            return np.exp(eta)
        return np.asarray(eta, dtype=float)

    def aux_start(self, y: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Start values of the auxiliary parameters from the outcome alone (moments, or
        the cumulative proportions for cut points); the pooled GLM refines them."""
        y = np.asarray(y, dtype=float)
        if self.name == "gaussian":
            return np.array([0.5 * np.log(max(float(np.var(y)), 1e-12))])
        if self.name == "nbinomial":
            mean = max(float(np.mean(y)), 1e-8)
            excess = float(np.var(y)) - mean
            if self.dispersion == "constant":
                return np.array([np.log(min(max(excess / mean, 0.05), 1e3))])
            return np.array([np.log(min(max(excess / mean**2, 0.05), 1e3))])
        if self.name == "gamma":
            mean = float(np.mean(y))
            return np.array([np.log(min(max(float(np.var(y)) / mean**2, 1e-6), 1e3))])
        if self.is_ordinal:
            from mixedglm.families.ordinal import cut_start

            start = cut_start(self.link, y, len(self.categories))
            start[0] += float(np.mean(offset)) if len(offset) else 0.0
            return start
        return np.zeros(self.n_aux)

    def check_outcome(self, y: np.ndarray, trials: np.ndarray | None, name: str) -> None:
        """Raise a :class:`DataError` naming ``name`` if ``y`` does not suit the family."""
        if self.name == "bernoulli" or (self.name == "binomial" and trials is None):
            bad = (y != 0) & (y != 1)
            if np.any(bad):
                values = ", ".join(f"{v:g}" for v in np.unique(y[bad])[:5])
                raise DataError(
                    f"outcome '{name}' must be 0 or 1 for a {self.model_words} model "
                    f"(found {values}); for successes out of trials use trials="
                )
        elif self.name == "binomial":
            assert trials is not None
            if np.any(trials < 0) or np.any(trials != np.round(trials)):
                raise DataError("the binomial trials must be non-negative integers")
            if np.any(y < 0) or np.any(y > trials) or np.any(y != np.round(y)):
                raise DataError(
                    f"outcome '{name}' must be an integer between 0 and the number of trials"
                )
        elif self.name in ("poisson", "nbinomial"):
            what = f"for a {self.model_words} model"
            if np.any(y < 0):
                raise DataError(
                    f"outcome '{name}' has negative values ({_examples(y[y < 0])}); counts "
                    f"must be >= 0 {what}"
                )
            if np.any(y != np.round(y)):
                raise DataError(
                    f"outcome '{name}' has non-integer values ({_examples(y[y != np.round(y)])}); "
                    f"counts must be integers {what}"
                )
        elif self.name == "gamma":
            bad = ~(y > 0)
            if np.any(bad):
                raise DataError(
                    f"outcome '{name}' has {int(bad.sum())} value{'s' if bad.sum() != 1 else ''} "
                    f"<= 0 ({_examples(y[bad])}); a gamma model needs a positive outcome"
                )


def _examples(values: np.ndarray) -> str:
    shown = ", ".join(f"{v:g}" for v in np.unique(values)[:3])
    return shown + (", ..." if np.unique(values).size > 3 else "")


def get_family(
    name: str = "binomial", link: str | None = None, dispersion: str | None = None
) -> Family:
    """The :class:`Family` for ``name`` and ``link`` (default: the family's canonical link).

    ``name`` may carry Stata's option as in ``family(nbinomial constant)``; ``dispersion``
    (``mean``, the default, or ``constant``) says the same for the negative binomial.
    Stata's synonyms ``logit``, ``nbreg``, ``ologit``, ``oprobit``, ``ocloglog`` are accepted.
    """
    words = str(name).lower().split()
    if not words:
        raise MixedGLMError("the family name is empty")
    key, options = words[0], words[1:]
    alias_link = None
    if key in _ALIASES:
        key, alias_link, _ = _ALIASES[key]
    if key not in _FAMILY_LINKS:
        raise MixedGLMError(
            f"unknown family '{name}': use one of {', '.join(sorted(_FAMILY_LINKS))}"
        )
    disp = dispersion.lower() if dispersion is not None else None
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
    default, allowed = _FAMILY_LINKS[key]
    if alias_link is not None and link is not None and link.lower() != alias_link:
        raise MixedGLMError(f"family '{name}' implies link '{alias_link}', not '{link}'")
    link_name = (link or alias_link or default).lower()
    if link_name not in allowed:
        raise MixedGLMError(
            f"link '{link_name}' is not available for family '{key}' (use {', '.join(allowed)})"
        )
    return Family(key, link_name, dispersion=(disp or "mean") if key == "nbinomial" else "")
