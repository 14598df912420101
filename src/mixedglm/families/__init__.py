"""Families and links: names, checks of the outcome, and the codes the kernels use."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

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
}
_LINK_WORDS = {"logit": "logistic", "probit": "probit", "cloglog": "complementary log-log"}


@dataclass(frozen=True)
class Family:
    """A distribution and link, with the words Stata uses for them."""

    name: str
    link: str

    @property
    def code(self) -> int:
        return {
            "bernoulli": k.BINOMIAL,
            "binomial": k.BINOMIAL,
            "poisson": k.POISSON,
            "gaussian": k.GAUSSIAN,
        }[self.name]

    @property
    def link_code(self) -> int:
        return LINKS[self.link]

    @property
    def n_aux(self) -> int:
        return k.n_aux_params(self.code)

    @property
    def aux_names(self) -> tuple[str, ...]:
        return ("lnsig_e",) if self.name == "gaussian" else ()

    @property
    def is_binary(self) -> bool:
        return self.code == k.BINOMIAL

    @property
    def model_words(self) -> str:
        """``logistic``, ``probit``, ``Poisson``... as in Stata's titles."""
        if self.is_binary:
            return _LINK_WORDS[self.link]
        return {"poisson": "Poisson", "gaussian": "linear"}[self.name]

    @property
    def title(self) -> str:
        """meglm's title for the mixed model."""
        if self.name == "gaussian":
            return "Mixed-effects ML regression"
        return f"Mixed-effects {self.model_words} regression"

    @property
    def xt_title(self) -> str:
        """xtlogit/xtprobit/xtpoisson's title."""
        if self.name == "gaussian":
            return "Random-effects ML regression"
        if self.is_binary and self.link == "cloglog":
            return "Random-effects complementary log-log model"
        return f"Random-effects {self.model_words} regression"

    @property
    def pooled_words(self) -> str:
        """What the LR test compares with: ``logistic model``, ``Poisson model``..."""
        if self.is_binary and self.link == "cloglog":
            return "cloglog model"
        return f"{self.model_words} model"

    @property
    def latent_variance(self) -> float | None:
        """Level-1 variance on the latent scale for the ICC (``rho``); ``None`` where the
        family has none of its own (Poisson) and gaussian's is estimated."""
        if self.is_binary:
            return {"logit": math.pi**2 / 3.0, "probit": 1.0, "cloglog": math.pi**2 / 6.0}[
                self.link
            ]
        return None

    def ancillary_rows(
        self, aux: np.ndarray, cov_aux: np.ndarray, level: float
    ) -> list[tuple[str, float, float, float, float]]:
        """Rows ``(label, estimate, se, ci_low, ci_high)`` of the family's ancillary
        parameters as Stata prints them between the fixed effects and the variance
        components (``/lnalpha`` and ``alpha``, ``/cut1``...). The gaussian residual
        variance is reported with the variance components instead."""
        return []

    def log_constant(self, y: np.ndarray, trials: np.ndarray) -> np.ndarray:
        """Per-observation normalising constants of the log-likelihood."""
        return k.log_constant(self.code, y, trials)

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        """The mean (for binomial: the probability of success) at ``eta``."""
        if self.link == "logit":
            return special.expit(eta)
        if self.link == "probit":
            return special.ndtr(eta)
        if self.link == "cloglog":
            return -np.expm1(-np.exp(eta))
        if self.link == "log":
            return np.exp(eta)
        return np.asarray(eta, dtype=float)

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
        elif self.name == "poisson":
            if np.any(y < 0):
                raise DataError(f"outcome '{name}' has negative values; counts must be >= 0")
            if np.any(y != np.round(y)):
                raise DataError(f"outcome '{name}' has non-integer values; counts must be integers")


def get_family(name: str = "binomial", link: str | None = None) -> Family:
    """The :class:`Family` for ``name`` and ``link`` (default: the family's canonical link)."""
    key = name.lower()
    if key in ("logit", "logistic"):
        key = "bernoulli"
    if key not in _FAMILY_LINKS:
        raise MixedGLMError(
            f"unknown family '{name}': use one of {', '.join(sorted(_FAMILY_LINKS))}"
        )
    default, allowed = _FAMILY_LINKS[key]
    link_name = (link or default).lower()
    if link_name not in allowed:
        raise MixedGLMError(
            f"link '{link_name}' is not available for family '{key}' (use {', '.join(allowed)})"
        )
    return Family(key, link_name)
