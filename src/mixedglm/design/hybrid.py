"""Within/between decomposition of covariates for hybrid and correlated-random-effects models.

For a covariate ``x`` observed on unit ``j`` of cluster ``i`` the hybrid model (Allison 2009;
Schunk & Perales 2017, Stata's ``xthybrid``) enters

* ``W__x = x_ij - mean_i(x)``: the within-cluster deviation, whose coefficient is the within
  effect (in a linear model exactly the fixed-effects estimator's);
* ``B__x = mean_i(x)``: the cluster mean, whose coefficient is the between effect;

and every covariate that is not decomposed as ``R__x = x``. The correlated-random-effects
(Mundlak) form enters ``W__x = x`` and ``D__x = mean_i(x)`` instead; its ``D__x`` coefficient
is the between minus the within effect and the model is a reparameterisation of the hybrid
one (same likelihood). Cluster means are taken over the estimation sample, after listwise
deletion of rows with a missing value in any model variable, as ``xthybrid`` does.

Which variables are decomposed: those in ``use`` (default: all covariates) whose within share
of variance exceeds ``percentage``. The share is ``xthybrid``'s ``floor(100 * (1 - rho))`` with
``rho = s2_u / (s2_u + s2_e)`` from a linear random-intercept decomposition of the variable
alone, estimated as Stata's ``xtreg, re`` does (the default consistent estimator):
``s2_e = SSR_within / (N - n)``, ``s2_u = max(0, SSR_between / (n - 1) - s2_e / T)`` with
``SSR_between`` the sum of squares of the cluster means about their unweighted mean and
``T`` the harmonic mean of the cluster sizes. Pure pandas/NumPy; the input is never modified.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mixedglm.design.missing import listwise
from mixedglm.errors import DataError, MixedGLMError

__all__ = [
    "NONLINEARITIES",
    "HybridDecomposition",
    "SkippedVariable",
    "decompose",
    "within_share_percent",
]

#: ``nonlinearities=`` -> highest power of the cluster means added as between terms.
NONLINEARITIES = {"quadratic": 2, "cubic": 3, "quartic": 4}
_RESERVED = re.compile(r"^[WBRD]\d*__")


@dataclass(frozen=True)
class SkippedVariable:
    """A ``use`` variable left undecomposed (entered as ``R__x``) for too little within
    variance, with ``xthybrid``'s message about it."""

    name: str
    within_percent: int
    message: tuple[str, ...]


@dataclass(frozen=True)
class VariableTerms:
    """The columns made from one decomposed variable: ``within`` (``W__x``), ``between``
    (``B__x``, or ``D__x`` in the CRE form) and ``powers`` (``B2__x``, ``B3__x``... or
    ``D2__x``...: powers of the cluster mean from ``nonlinearities``)."""

    name: str
    within: str
    between: str
    powers: tuple[str, ...] = ()


@dataclass(frozen=True)
class HybridDecomposition:
    """The estimation sample with the decomposed columns, and what was done.

    Attributes
    ----------
    frame : the estimation sample (rows without missing values, in the data's order) with
        columns ``response``, ``cluster``, the new ``R__``/``W__``/``B__``/``D__`` columns and
        any ``carry`` columns (offset, exposure, trials) under their own names.
    response, cluster : the outcome and cluster variable names.
    cre : the Mundlak (``D__``) form instead of the hybrid (``B__``) one.
    residual : ``R__`` columns, sorted by name (the order of the seed's ``xthybrid`` table).
    terms : one :class:`VariableTerms` per decomposed variable, in ``use`` order.
    skipped : ``use`` variables entered as ``R__`` for too little within variance.
    within_percent : the within share (percent, floored) of every ``use`` variable checked.
    n_dropped : rows dropped for missing values.
    notes : the messages to print (``xthybrid``'s for skipped variables, missing values).
    """

    frame: pd.DataFrame = field(repr=False)
    response: str
    cluster: str
    cre: bool
    residual: tuple[str, ...]
    terms: tuple[VariableTerms, ...]
    skipped: tuple[SkippedVariable, ...]
    within_percent: dict[str, int]
    n_dropped: int
    notes: tuple[str, ...]
    percentage: float = 0.0
    nonlinearities: str | None = None

    @property
    def within(self) -> tuple[str, ...]:
        """``W__`` columns in ``use`` order."""
        return tuple(t.within for t in self.terms)

    @property
    def between(self) -> tuple[str, ...]:
        """``B__`` (or ``D__``) columns in ``use`` order."""
        return tuple(t.between for t in self.terms)

    @property
    def powers(self) -> tuple[str, ...]:
        """Powers of the cluster means, by power then in ``use`` order."""
        n = max((len(t.powers) for t in self.terms), default=0)
        return tuple(t.powers[k] for k in range(n) for t in self.terms if k < len(t.powers))

    @property
    def decomposed(self) -> tuple[str, ...]:
        """The original names of the decomposed variables."""
        return tuple(t.name for t in self.terms)

    @property
    def columns(self) -> tuple[str, ...]:
        """All model columns in the table's order: ``R__``, ``W__``, ``B__``/``D__``, powers."""
        return self.residual + self.within + self.between + self.powers

    def column_for(self, name: str) -> str:
        """The column carrying a variable's within (or, if not decomposed, its only) effect."""
        for t in self.terms:
            if t.name == name:
                return t.within
        if f"R__{name}" in self.residual:
            return f"R__{name}"
        raise MixedGLMError(f"'{name}' is not a covariate of the hybrid model")


def within_share_percent(x: np.ndarray, codes: np.ndarray) -> int:
    """``floor(100 * (1 - rho))``: the percentage of the variance of ``x`` within clusters.

    ``rho`` is the intra-class correlation of ``x`` from Stata's ``xtreg x, re`` (see the
    module docstring). A variable constant within every cluster has share 0; so has one
    with no between-cluster variance estimate when there are no repeated observations.
    """
    x = np.asarray(x, dtype=float)
    codes = np.asarray(codes)
    sizes = np.bincount(codes).astype(float)
    means = np.bincount(codes, weights=x) / sizes
    resid = x - means[codes]
    return share_from_sums(float(resid @ resid), x.shape[0], sizes, means)


def share_from_sums(ssr_w: float, n_obs: int, sizes: np.ndarray, means: np.ndarray) -> int:
    """:func:`within_share_percent` from the within sum of squares and the clusters' sizes
    and means (in label order; from all the data, or summed over the partitions of a Dask
    fit, each holding whole clusters)."""
    n_groups = sizes.shape[0]
    if n_obs <= n_groups or ssr_w <= 0.0:
        return 0
    s2_e = ssr_w / (n_obs - n_groups)
    if n_groups > 1:
        dev = means - means.mean()
        t_bar = n_groups / float(np.sum(1.0 / sizes))
        s2_u = max(0.0, float(dev @ dev) / (n_groups - 1) - s2_e / t_bar)
    else:
        s2_u = 0.0
    rho = s2_u / (s2_u + s2_e)
    return math.floor(100.0 * (1.0 - rho))


def _skip_message(name: str, percent: int) -> tuple[str, ...]:
    return (
        f"The variable '{name}' does not vary sufficiently within clusters",
        "and will not be used to create additional regressors.",
        f"[~{percent}% of the total variance in '{name}' is within clusters]",
    )


def _numeric(frame: pd.DataFrame, name: str, role: str) -> np.ndarray:
    col = frame[name]
    if col.dtype == bool:
        return col.to_numpy(dtype=float)
    if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col):
        kind = "text" if pd.api.types.is_string_dtype(col.dtype) else col.dtype
        raise DataError(
            f"{role} '{name}' is not numeric ({kind}): hybrid models decompose numeric "
            "variables; code categories as 0/1 columns first (pandas.get_dummies)"
        )
    return col.to_numpy(dtype=float)


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        if _RESERVED.match(name):
            raise DataError(
                f"variable '{name}' starts with a prefix the hybrid model gives to the columns "
                "it creates (W__, B__, R__, D__): rename it, so that its columns cannot be "
                "confused with generated ones (xthybrid refuses such names too)"
            )


@dataclass(frozen=True)
class HybridRequest:
    """A hybrid model's variables, checked: the covariates (``model_vars``), those to
    decompose (``use``), the carried columns and all the columns read (``wanted``)."""

    response: str
    cluster: str
    model_vars: tuple[str, ...]
    use: tuple[str, ...]
    carry: tuple[str, ...]
    wanted: tuple[str, ...]


def hybrid_request(
    columns: Sequence[str],
    response: str,
    covariates: Sequence[str],
    cluster: str,
    *,
    use: Sequence[str] | None = None,
    percentage: float = 0.0,
    nonlinearities: str | None = None,
    carry: Sequence[str] = (),
) -> HybridRequest:
    """Check the options and that the variables are among the data's ``columns``."""
    if nonlinearities is not None and nonlinearities not in NONLINEARITIES:
        raise MixedGLMError(
            f"nonlinearities must be one of {', '.join(NONLINEARITIES)}, not '{nonlinearities}'"
        )
    if not isinstance(percentage, int | float) or not 0 <= percentage < 100:
        raise MixedGLMError(f"percentage must be a number in [0, 100), not {percentage!r}")
    covariates = list(dict.fromkeys(covariates))
    use_list = list(dict.fromkeys(covariates if use is None else use))
    model_vars = covariates + [v for v in use_list if v not in covariates]
    if not model_vars:
        raise MixedGLMError("the hybrid model needs at least one covariate")
    carry = [c for c in dict.fromkeys(carry) if c is not None]
    roles = {response: "outcome", cluster: "cluster variable"}
    roles |= {v: "covariate" for v in covariates}
    roles |= {v: "use() variable" for v in use_list if v not in covariates}
    roles |= {c: "variable" for c in carry}
    for name, role in roles.items():
        if name not in columns:
            raise DataError(f"{role} '{name}' not found in the data")
    if cluster in model_vars or cluster == response:
        raise MixedGLMError(f"cluster variable '{cluster}' cannot also be in the model")
    if response in model_vars:
        raise MixedGLMError(f"outcome '{response}' cannot also be a covariate")
    _check_names([response, *model_vars])
    wanted = list(dict.fromkeys([response, cluster, *model_vars, *carry]))
    return HybridRequest(
        response, cluster, tuple(model_vars), tuple(use_list), tuple(carry), tuple(wanted)
    )


def missing_cluster_error(n_missing: int, cluster: str) -> DataError:
    """Rows without a cluster are refused (not dropped)."""
    return DataError(
        f"cluster variable '{cluster}' has {n_missing} missing value"
        f"{'s' if n_missing != 1 else ''}: give those rows a cluster or drop them"
    )


def outcome_values(frame: pd.DataFrame, response: str) -> np.ndarray:
    """The outcome as numbers (a categorical's codes, as glmm() codes it)."""
    if isinstance(frame[response].dtype, pd.CategoricalDtype):
        return frame[response].cat.codes.to_numpy(dtype=float)
    return _numeric(frame, response, "outcome")


def outcome_spread(y: np.ndarray, codes: np.ndarray, sizes: np.ndarray) -> tuple[float, float]:
    """The largest deviation of the outcome from its cluster mean, and its largest value."""
    if not y.size:
        return 0.0, 0.0
    y_mean = np.bincount(codes, weights=y) / sizes
    return float(np.max(np.abs(y - y_mean[codes]))), float(np.max(np.abs(y)))


def check_outcome_spread(spread: float, largest: float, response: str, cluster: str) -> None:
    """The outcome must vary within some cluster (the within effects' information)."""
    if spread <= 1e-12 * max(1.0, largest):
        raise DataError(
            f"outcome '{response}' does not vary within any cluster of '{cluster}': within "
            "effects cannot be estimated"
        )


def plan_terms(
    request: HybridRequest,
    within_percent: dict[str, int],
    *,
    cre: bool,
    percentage: float,
    nonlinearities: str | None,
) -> tuple[tuple[VariableTerms, ...], tuple[SkippedVariable, ...], tuple[str, ...], list[str]]:
    """Which ``use`` variables are decomposed (within share above ``percentage``): their
    terms, the skipped ones, the ``R__`` columns (sorted) and ``xthybrid``'s messages."""
    max_power = NONLINEARITIES.get(nonlinearities or "", 1)
    notes: list[str] = []
    skipped: list[SkippedVariable] = []
    terms: list[VariableTerms] = []
    residual_names = [v for v in request.model_vars if v not in request.use]
    prefix = "D" if cre else "B"
    for name in request.use:
        share = within_percent[name]
        if share <= percentage:
            message = _skip_message(name, share)
            skipped.append(SkippedVariable(name, share, message))
            notes.extend(message)
            residual_names.append(name)
            continue
        powers = tuple(f"{prefix}{k}__{name}" for k in range(2, max_power + 1))
        terms.append(VariableTerms(name, f"W__{name}", f"{prefix}__{name}", powers))
    residual = tuple(sorted(f"R__{v}" for v in residual_names))
    return tuple(terms), tuple(skipped), residual, notes


def decomposed_frame(
    frame: pd.DataFrame,
    codes: np.ndarray,
    sizes: np.ndarray,
    request: HybridRequest,
    residual: Sequence[str],
    terms: Sequence[VariableTerms],
    cre: bool,
) -> pd.DataFrame:
    """The model's columns on the estimation rows ``frame`` (clusters ``codes``, whole):
    outcome, cluster, ``R__``, then per decomposed variable ``W__``, ``B__`` (``D__``) and
    the powers of the cluster mean, then the carried columns."""
    out: dict[str, np.ndarray] = {
        request.response: frame[request.response].to_numpy(),
        request.cluster: frame[request.cluster].to_numpy(),
    }
    for col in residual:
        out[col] = _numeric(frame, col[3:], "covariate")
    for term in terms:
        x = _numeric(frame, term.name, "use() variable")
        mean = (np.bincount(codes, weights=x, minlength=sizes.shape[0]) / sizes)[codes]
        out[term.within] = x if cre else x - mean
        out[term.between] = mean
        for k, power in enumerate(term.powers, start=2):
            out[power] = mean**k
    for c in request.carry:
        if c not in out:
            out[c] = frame[c].to_numpy()
    return pd.DataFrame(out, index=frame.index)


def decompose(
    data: pd.DataFrame,
    response: str,
    covariates: Sequence[str],
    cluster: str,
    *,
    use: Sequence[str] | None = None,
    cre: bool = False,
    percentage: float = 0.0,
    nonlinearities: str | None = None,
    carry: Sequence[str] = (),
) -> HybridDecomposition:
    """Split the ``use`` variables into within and between parts on the estimation sample.

    ``covariates`` and ``use`` together are the model's covariates (``use`` variables not
    listed among ``covariates`` are added, as in ``xthybrid``'s syntax); ``use=None``
    decomposes all covariates. ``carry`` names extra columns (offset, exposure, trials)
    that take part in the listwise deletion and are copied to the result unchanged.
    """
    request = hybrid_request(
        list(data.columns),
        response,
        covariates,
        cluster,
        use=use,
        percentage=percentage,
        nonlinearities=nonlinearities,
        carry=carry,
    )
    frame = data[list(request.wanted)]
    n_missing_cluster = int(frame[cluster].isna().sum())
    if n_missing_cluster:
        raise missing_cluster_error(n_missing_cluster, cluster)
    rows = listwise(frame)
    keep, n_dropped = rows.keep, rows.n_dropped
    notes = rows.notes()
    if not keep.any():
        raise DataError(f"no observations left after dropping {n_dropped} with missing values")
    frame = frame.loc[keep]
    codes, _ = pd.factorize(frame[cluster], sort=True)
    sizes = np.bincount(codes).astype(float)
    y = outcome_values(frame, response)
    check_outcome_spread(*outcome_spread(y, codes, sizes), response, cluster)
    within_percent = {
        name: within_share_percent(_numeric(frame, name, "use() variable"), codes)
        for name in request.use
    }
    terms, skipped, residual, plan_notes = plan_terms(
        request, within_percent, cre=cre, percentage=percentage, nonlinearities=nonlinearities
    )
    return HybridDecomposition(
        frame=decomposed_frame(frame, codes, sizes, request, residual, terms, cre),
        response=response,
        cluster=cluster,
        cre=cre,
        residual=residual,
        terms=terms,
        skipped=skipped,
        within_percent=within_percent,
        n_dropped=n_dropped,
        notes=tuple(notes + plan_notes),
        percentage=float(percentage),
        nonlinearities=nonlinearities,
    )
