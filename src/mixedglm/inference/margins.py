"""Predictive margins and average marginal effects of the mean response: Stata's
``margins``.

For row ``i`` of the data and random effects ``b ~ N(0, Sigma)`` the mean response is
``mu_i = E_b[g^-1(x_i beta + o_i + z_i b)]`` (``marginal=True``: population-averaged, the
random effects integrated out by Gauss-Hermite quadrature on ``b = Lambda u``) or
``g^-1(x_i beta + o_i)`` (``marginal=False``: the random effects at zero, Stata's
``predict(mu fixedonly)``). A predictive margin is the average of ``mu_i`` over the rows
(after setting covariates with ``at``); the average marginal effect of a continuous
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

from mixedglm.engines.quadrature import gauss_hermite_rule
from mixedglm.errors import MixedGLMError
from mixedglm.results.predict import new_data_arrays
from mixedglm.results.tables import factor_parts

__all__ = ["margins"]

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
class _Term:
    """One reported quantity: a predictive margin (``kind="margin"``), a derivative
    (``dX``, ``dZ`` of the model columns in the variable) or a contrast of two scenarios."""

    kind: str
    base: _Scenario
    other: _Scenario | None = None
    dX: np.ndarray | None = None
    dZ: np.ndarray | None = None


class _Evaluator:
    """Averages of the mean response and its derivatives as functions of ``[beta, theta]``."""

    def __init__(self, res, marginal: bool, row_weights: np.ndarray | None = None) -> None:
        self.res = res
        self.row_weights = row_weights
        self.p = res.n_beta
        self.t = res.n_theta
        self.mu, self.slope = _mu_and_slope(res.family.link)
        q = res.structure.q
        if marginal and q:
            n = 30 if q == 1 else max(3, round(4_000 ** (1 / q)))
            rule = gauss_hermite_rule(n, q)
            self.nodes = rule.nodes
            self.weights = np.exp(rule.log_weights)
        else:
            self.nodes = np.zeros((1, q))
            self.weights = np.ones(1)

    def values(self, params: np.ndarray, terms: list[_Term], rows: np.ndarray) -> np.ndarray:
        beta = params[: self.p]
        lam = self.res.structure.lam(params[self.p : self.p + self.t])
        u = self.nodes @ lam.T  # (K, q) values of b
        out = np.empty(len(terms))
        for k, term in enumerate(terms):
            out[k] = self._one(term, beta, u, rows)
        return out

    def _mean(self, sc: _Scenario, beta, u, rows) -> np.ndarray:
        eta = (sc.X[rows] @ beta + sc.offset[rows])[:, None] + sc.Z[rows] @ u.T
        return eta

    def _one(self, term: _Term, beta, u, rows) -> float:
        eta = self._mean(term.base, beta, u, rows)
        if term.kind == "margin":
            vals = self.mu(eta)
        elif term.kind == "contrast":
            assert term.other is not None
            vals = self.mu(self._mean(term.other, beta, u, rows)) - self.mu(eta)
        else:
            assert term.dX is not None and term.dZ is not None
            deta = (term.dX[rows] @ beta)[:, None] + term.dZ[rows] @ u.T
            vals = self.slope(eta) * deta
        values = vals @ self.weights
        if self.row_weights is None:
            return float(np.mean(values))
        w = self.row_weights[rows]
        return float(values @ w / w.sum())


def _scenario(res, frame: pd.DataFrame) -> _Scenario:
    X, Z, offset, _ = new_data_arrays(res, frame)
    return _Scenario(np.ascontiguousarray(X), np.ascontiguousarray(Z), offset)


def _factor_levels(res, var: str) -> list[tuple[str, str]]:
    """``(coefficient name, level)`` of a factor variable's non-base levels."""
    out = []
    for name in res.design.x_names:
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


def _dydx_terms(res, frame: pd.DataFrame, var: str, base: _Scenario) -> list[tuple[str, _Term]]:
    if var not in frame.columns:
        raise MixedGLMError(f"dydx variable '{var}' is not in the data")
    levels = _factor_levels(res, var)
    if levels:
        present = {str(v) for v in pd.unique(frame[var])}
        used = {lev for _, lev in levels}
        candidates = sorted((v for v in pd.unique(frame[var]) if str(v) not in used), key=_sort_key)
        if not candidates:
            raise MixedGLMError(f"factor '{var}' has no base level in the data")
        base_frame = _set_level(frame, var, str(candidates[0]))
        base_sc = _scenario(res, base_frame)
        out = []
        for name, level in levels:
            if level not in present and not any(_same_number(v, level) for v in present):
                continue
            other = _scenario(res, _set_level(frame, var, level))
            out.append((name, _Term("contrast", base_sc, other)))
        return out
    values = frame[var]
    if not pd.api.types.is_numeric_dtype(values):
        raise MixedGLMError(f"dydx variable '{var}' is neither numeric nor a factor of the model")
    x = values.to_numpy(dtype=float)
    h = 1e-4 * (np.std(x) + 1e-4) if np.std(x) > 0 else 1e-4
    up = _scenario(res, frame.assign(**{var: x + h}))
    down = _scenario(res, frame.assign(**{var: x - h}))
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
        base = _scenario(res, scen_frame)
        at_label = ", ".join(f"{k}={v}" for k, v in setting.items())
        items = (
            [("_cons", _Term("margin", base))]
            if not names
            else [t for v in names for t in _dydx_terms(res, scen_frame, v, base)]
        )
        for over_label, rows in groups:
            for name, term in items:
                labels.append((at_label, over_label, name))
                terms.append(term)
                rows_of.append(rows)
    info = getattr(res, "weights", None)
    weights = info.rows if info is not None and data is None else None
    ev = _Evaluator(res, marginal, weights)
    k = res.n_beta + res.n_theta
    params = res.params_all[:k].astype(float)
    cov = res.cov_all[:k, :k]

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
