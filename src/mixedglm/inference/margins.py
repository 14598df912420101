"""Predictive margins and average marginal effects of the mean response: Stata's
``margins``.

For row ``i`` of the data and random effects ``b ~ N(0, Sigma)`` (all grouping factors'
effects together: independent factors make ``Sigma`` block diagonal) the mean response is
``mu_i = E_b[g^-1(x_i beta + o_i + z_i b)]`` (``marginal=True``: population-averaged) or
``g^-1(x_i beta + o_i)`` (``marginal=False``: the random effects at zero, Stata's
``predict(mu fixedonly)``). ``z_i b`` is normal with variance ``s_i^2 = z_i Sigma z_i'``, so
the expectation is one-dimensional whatever the number of random effects, over ``t ~ N(0, 1)``
with ``eta = x_i beta + o_i + s_i t``, by the trapezoidal rule on ``[-10, 10]`` with a step
that shrinks as the largest ``s_i`` grows (:func:`_normal_rule`; Gauss-Hermite with 30 points
was off by up to 1e-4 in a row's effect at ``s = 2`` and 8e-3 at ``s = 3``: the logistic's poles at
``eta = +-i pi`` limit it, the trapezoidal rule's error is ``exp(-2 pi^2 / (s h))``); a derivative
``d eta = dx_i beta + dz_i b`` enters through its regression on ``t``,
``dx_i beta + (dz_i Sigma z_i' / s_i) t``. A predictive margin is the average of ``mu_i``
over the rows (after setting covariates with ``at``); the average marginal effect of a continuous
variable is the average of ``d mu_i / d v``, and that of a factor the average change from
the base level to each other level. The derivative in ``v`` passes through the formula's
terms (``I(v**2)``, interactions, random slopes on ``v``): the model columns' derivatives
are central differences of the model matrices, exact for polynomial terms up to rounding.
Standard errors by the delta method: the Jacobian in ``[beta, theta]`` by central
differences (the margins are smooth, closed-form functions of the parameters), with the
fit's covariance (robust, if the fit is).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from mixedglm.errors import MixedGLMError
from mixedglm.results.predict import new_data_arrays
from mixedglm.results.tables import factor_parts

__all__ = ["MarginsModel", "margins", "one_factor_model"]

COLUMNS = ["estimate", "se", "z", "p", "ci_low", "ci_high"]


def _mu_and_slope(link: str) -> tuple[Callable, Callable]:
    """The inverse link and its derivative in eta."""
    if link == "logit":
        return expit, lambda e: expit(e) * (1.0 - expit(e))
    if link == "probit":
        return stats.norm.cdf, stats.norm.pdf
    if link == "cloglog":
        return (
            lambda e: -np.expm1(-np.exp(np.minimum(e, 700))),
            lambda e: np.exp(np.minimum(e, 700) - np.exp(np.minimum(e, 700))),
        )
    if link == "log":
        return (lambda e: np.exp(e)), (lambda e: np.exp(e))
    if link == "identity":
        return (lambda e: e), (lambda e: np.ones_like(e))
    raise MixedGLMError(f"margins() does not support the {link} link")


@dataclass(frozen=True)
class _Scenario:
    """The model arrays of one setting of the covariates, rows in data order."""

    X: np.ndarray
    Z: np.ndarray
    offset: np.ndarray


@dataclass(frozen=True)
class MarginsModel:
    """What margins need of a fit: the fixed-effect names, the model arrays ``(X, Z,
    offset)`` of a data frame (``Z``: every factor's random-effect columns side by side) and
    ``Lambda(theta)`` on those columns (block diagonal over the factors)."""

    x_names: tuple[str, ...]
    arrays: Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray, np.ndarray]]
    lam: Callable[[np.ndarray], np.ndarray]


def one_factor_model(res) -> MarginsModel:
    """The :class:`MarginsModel` of a fit with one grouping factor."""
    return MarginsModel(
        tuple(res.design.x_names),
        lambda frame: new_data_arrays(res, frame)[:3],
        res.structure.lam,
    )


@dataclass(frozen=True)
class _Term:
    """One reported quantity: a predictive margin (``kind="margin"``), a derivative
    (``dX``, ``dZ`` of the model columns in the variable) or a contrast of two scenarios."""

    kind: str
    base: _Scenario
    other: _Scenario | None = None
    dX: np.ndarray | None = None
    dZ: np.ndarray | None = None


def _normal_rule(largest_sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for ``E[f(a + s t)]``, ``t ~ N(0, 1)``, ``s <= largest_sd``: the
    trapezoidal rule on ``[-10, 10]`` with step ``h = min(0.5, 2 pi^2 / (27 s))``, about
    1e-11 relative for the logistic mean and 1e-9 for its derivative (41 points up to
    ``s = 1.46``, then about ``27 s``)."""
    if largest_sd <= 0:
        return np.zeros(1), np.ones(1)
    step = min(0.5, 2 * np.pi**2 / (27 * largest_sd))
    half = int(np.ceil(10 / step))
    nodes = np.arange(-half, half + 1) * step
    weights = stats.norm.pdf(nodes)
    return nodes, weights / weights.sum()


class _Evaluator:
    """Averages of the mean response and its derivatives as functions of ``[beta, theta]``."""

    def __init__(
        self, res, model: MarginsModel, marginal: bool, row_weights: np.ndarray | None = None
    ) -> None:
        self.model = model
        self.row_weights = row_weights
        self.p = res.n_beta
        self.t = res.n_theta
        self.marginal = marginal and res.n_theta > 0
        self.mu, self.slope = _mu_and_slope(res.family.link)
        self.nodes, self.weights = _normal_rule(0.0)

    def choose_rule(self, params: np.ndarray, terms: list[_Term], rows_of: list) -> None:
        """The rule for the largest SD of ``z b`` over the terms' rows at ``params`` (one
        rule for every evaluation, so that the Jacobian's differences see the same rule)."""
        if not self.marginal:
            return
        lam = self.model.lam(params[self.p : self.p + self.t])
        sigma = lam @ lam.T
        largest = 0.0
        for term, rows in zip(terms, rows_of, strict=True):
            for sc in (term.base, term.other):
                if sc is not None and len(rows):
                    largest = max(
                        largest, float(np.max(self._eta(sc, params[: self.p], sigma, rows)[1]))
                    )
        self.nodes, self.weights = _normal_rule(largest)

    def values(self, params: np.ndarray, terms: list[_Term], rows: np.ndarray) -> np.ndarray:
        beta = params[: self.p]
        lam = self.model.lam(params[self.p : self.p + self.t])
        sigma = lam @ lam.T
        out = np.empty(len(terms))
        for k, term in enumerate(terms):
            out[k] = self._one(term, beta, sigma, rows)
        return out

    def _eta(self, sc: _Scenario, beta, sigma, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``eta`` at the nodes ``(n, K)``, each row's SD ``s`` of ``z b`` and ``Z Sigma``."""
        Z = sc.Z[rows]
        z_sigma = Z @ sigma
        s = np.sqrt(np.maximum(np.einsum("ij,ij->i", z_sigma, Z), 0.0))
        eta = (sc.X[rows] @ beta + sc.offset[rows])[:, None] + s[:, None] * self.nodes[None, :]
        return eta, s, z_sigma

    def _one(self, term: _Term, beta, sigma, rows) -> float:
        eta, s, z_sigma = self._eta(term.base, beta, sigma, rows)
        if term.kind == "margin":
            vals = self.mu(eta)
        elif term.kind == "contrast":
            assert term.other is not None
            vals = self.mu(self._eta(term.other, beta, sigma, rows)[0]) - self.mu(eta)
        else:
            assert term.dX is not None and term.dZ is not None
            cov = np.einsum("ij,ij->i", term.dZ[rows], z_sigma)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(s > 0, cov / s, 0.0)
            deta = (term.dX[rows] @ beta)[:, None] + ratio[:, None] * self.nodes[None, :]
            vals = self.slope(eta) * deta
        values = vals @ self.weights
        if self.row_weights is None:
            return float(np.mean(values))
        w = self.row_weights[rows]
        return float(values @ w / w.sum())


def _scenario(model: MarginsModel, frame: pd.DataFrame) -> _Scenario:
    X, Z, offset = model.arrays(frame)
    return _Scenario(np.ascontiguousarray(X), np.ascontiguousarray(Z), offset)


def _factor_levels(model: MarginsModel, var: str) -> list[tuple[str, str]]:
    """``(coefficient name, level)`` of a factor variable's non-base levels."""
    out = []
    for name in model.x_names:
        parts = factor_parts(name)
        if parts is not None and parts[0] == var:
            out.append((name, parts[1]))
    return out


def _set_level(frame: pd.DataFrame, var: str, level: str) -> pd.DataFrame:
    values = frame[var]
    matches = [v for v in pd.unique(values) if str(v) == level or _same_number(v, level)]
    value = matches[0] if matches else level
    return frame.assign(
        **{var: pd.Series([value] * len(frame), index=frame.index).astype(values.dtype)}
    )


def _same_number(value, text: str) -> bool:
    try:
        return float(value) == float(text)
    except (TypeError, ValueError):
        return False


def _dydx_terms(
    model: MarginsModel, frame: pd.DataFrame, var: str, base: _Scenario
) -> list[tuple[str, _Term]]:
    if var not in frame.columns:
        raise MixedGLMError(f"dydx variable '{var}' is not in the data")
    levels = _factor_levels(model, var)
    if levels:
        present = {str(v) for v in pd.unique(frame[var])}
        used = {lev for _, lev in levels}
        candidates = sorted((v for v in pd.unique(frame[var]) if str(v) not in used), key=_sort_key)
        if not candidates:
            raise MixedGLMError(f"factor '{var}' has no base level in the data")
        base_frame = _set_level(frame, var, str(candidates[0]))
        base_sc = _scenario(model, base_frame)
        out = []
        for name, level in levels:
            if level not in present and not any(_same_number(v, level) for v in present):
                continue
            other = _scenario(model, _set_level(frame, var, level))
            out.append((name, _Term("contrast", base_sc, other)))
        return out
    values = frame[var]
    if not pd.api.types.is_numeric_dtype(values):
        raise MixedGLMError(f"dydx variable '{var}' is neither numeric nor a factor of the model")
    x = values.to_numpy(dtype=float)
    h = 1e-4 * (np.std(x) + 1e-4) if np.std(x) > 0 else 1e-4
    up = _scenario(model, frame.assign(**{var: x + h}))
    down = _scenario(model, frame.assign(**{var: x - h}))
    dX = (up.X - down.X) / (2 * h)
    dZ = (up.Z - down.Z) / (2 * h)
    if not np.any(dX) and not np.any(dZ):
        raise MixedGLMError(f"dydx variable '{var}' does not enter the model")
    return [(var, _Term("dydx", base, dX=dX, dZ=dZ))]


def _sort_key(value):
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _at_settings(at: dict | None) -> list[dict]:
    if not at:
        return [{}]
    keys = list(at)
    lists = [v if isinstance(v, (list, tuple, np.ndarray)) else [v] for v in at.values()]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*lists)]


def _estimation_frame(res) -> pd.DataFrame:
    if getattr(res, "data", None) is None:
        raise MixedGLMError("margins() needs the estimation data: pass data=")
    return res.data


def margins(
    res,
    dydx: str | list[str] | None = None,
    at: dict | None = None,
    over: str | None = None,
    marginal: bool = True,
    data: pd.DataFrame | None = None,
    level: float | None = None,
) -> pd.DataFrame:
    """Stata's ``margins``: average marginal effects (``dydx``) or predictive margins of the
    mean response, with delta-method SEs. ``marginal=True`` integrates the random effects
    out (population-averaged), ``False`` sets them to zero (``predict(mu fixedonly)``).
    ``res.margins(...)`` of a GLMM fit is this function.

    Returns a DataFrame with columns ``estimate``, ``se``, ``z``, ``p``, ``ci_low``,
    ``ci_high``, indexed by the variable (``dydx``; factor levels by their coefficient
    names) or ``_cons`` (a predictive margin); with ``at`` or ``over`` the index gains
    levels ``at`` (``"v=1, w=0"``) and ``over``.
    """
    if res.family.is_ordinal:
        raise MixedGLMError("margins() of ordinal models are not supported (no mean response)")
    frame = (data if data is not None else _estimation_frame(res)).reset_index(drop=True)
    model = res.margins_model() if hasattr(res, "margins_model") else one_factor_model(res)
    names = [dydx] if isinstance(dydx, str) else list(dydx or [])
    names = [n for part in names for n in part.split()]
    if over is not None and over not in frame.columns:
        raise MixedGLMError(f"over variable '{over}' is not in the data")
    for key in at or {}:
        if key not in frame.columns:
            raise MixedGLMError(f"at() variable '{key}' is not in the data")
    groups = [(None, np.arange(len(frame)))]
    if over is not None:
        codes, over_levels = pd.factorize(frame[over], sort=True)
        groups = [(over_levels[k], np.flatnonzero(codes == k)) for k in range(len(over_levels))]
    labels: list[tuple] = []
    terms: list[_Term] = []
    rows_of: list[np.ndarray] = []
    for setting in _at_settings(at):
        scen_frame = frame.assign(**setting) if setting else frame
        base = _scenario(model, scen_frame)
        at_label = ", ".join(f"{k}={v}" for k, v in setting.items())
        items = (
            [("_cons", _Term("margin", base))]
            if not names
            else [t for v in names for t in _dydx_terms(model, scen_frame, v, base)]
        )
        for over_label, rows in groups:
            for name, term in items:
                labels.append((at_label, over_label, name))
                terms.append(term)
                rows_of.append(rows)
    info = getattr(res, "weights", None)
    weights = info.rows if info is not None and data is None else None
    ev = _Evaluator(res, model, marginal, weights)
    k = res.n_beta + res.n_theta
    params = res.params_all[:k].astype(float)
    cov = res.cov_all[:k, :k]
    ev.choose_rule(params, terms, rows_of)

    def evaluate(x: np.ndarray) -> np.ndarray:
        return np.array([ev.values(x, [t], r)[0] for t, r in zip(terms, rows_of, strict=True)])

    estimate = evaluate(params)
    jac = np.zeros((len(terms), k))
    used = ~np.isnan(np.diag(cov))
    for j in range(k):
        if not used[j]:
            continue
        step = 1e-6 * max(1.0, abs(params[j]))
        up, down = params.copy(), params.copy()
        up[j] += step
        down[j] -= step
        jac[:, j] = (evaluate(up) - evaluate(down)) / (2 * step)
    sub = cov[np.ix_(used, used)]
    var = np.einsum("ka,ab,kb->k", jac[:, used], sub, jac[:, used])
    se = np.sqrt(np.maximum(var, 0.0))
    crit = stats.norm.ppf(0.5 + (level or res.level) / 200.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = estimate / se
    out = pd.DataFrame(
        {
            "estimate": estimate,
            "se": se,
            "z": z,
            "p": 2 * stats.norm.sf(np.abs(z)),
            "ci_low": estimate - crit * se,
            "ci_high": estimate + crit * se,
        }
    )
    index_parts = []
    if at:
        index_parts.append(("at", [lab[0] for lab in labels]))
    if over is not None:
        index_parts.append((over, [lab[1] for lab in labels]))
    index_parts.append(("term", [lab[2] for lab in labels]))
    if len(index_parts) == 1:
        out.index = pd.Index(index_parts[0][1], name="term")
    else:
        out.index = pd.MultiIndex.from_arrays(
            [vals for _, vals in index_parts], names=[n for n, _ in index_parts]
        )
    out.attrs.update(
        {
            "dydx": names,
            "marginal": marginal,
            "nobs": len(frame),
            "vce": "robust" if getattr(res, "vce", None) is not None else "OIM",
        }
    )
    return out
