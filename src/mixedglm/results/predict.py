"""Predictions of a fitted GLMM: linear predictors and means, conditional on the predicted
random effects or marginal over them, on the estimation data or on new data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mixedglm.design.build import readable_name
from mixedglm.engines.quadrature import gauss_hermite_rule
from mixedglm.errors import DataError, MixedGLMError
from mixedglm.formula.idioms import derived_column

KINDS = ("xb", "eta", "mu", "pr")


def _matrix(spec, frame: pd.DataFrame, wanted: tuple[str, ...], what: str) -> np.ndarray:
    mm = spec.get_model_matrix(frame, na_action="ignore")
    names = [readable_name(str(c)) for c in mm.columns]
    missing = [n for n in wanted if n not in names]
    if missing:
        raise DataError(f"the new data do not produce the {what} column(s) {', '.join(missing)}")
    values = np.asarray(mm, dtype=float)
    return values[:, [names.index(n) for n in wanted]]


def new_data_arrays(
    res, data: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X``, ``Z``, offset and each row's cluster code (-1 for a cluster not in the fit)."""
    design = res.design
    X = _matrix(design.fixed_spec, data, design.x_names, "fixed-effect")
    Z = np.hstack(
        [
            np.asarray(spec.get_model_matrix(data, na_action="ignore"), dtype=float)
            for spec in design.random_specs
        ]
    )
    offset = np.zeros(len(data))
    for name, transform in ((design.offset_name, None), (design.exposure_name, np.log)):
        if name is None:
            continue
        values = derived_column(data, name, "offset" if transform is None else "exposure")
        offset += values if transform is None else transform(values)
    group = design.group
    if group.name not in data.columns:
        codes = np.full(len(data), -1)
    else:
        lookup = pd.Index(group.labels)
        codes = lookup.get_indexer(data[group.name])
    return X, Z, offset, codes


def predict(
    res, data: pd.DataFrame | None, kind: str, conditional: bool
) -> pd.Series | pd.DataFrame:
    """See :meth:`GLMMResults.predict`."""
    if kind not in KINDS:
        raise MixedGLMError(f"kind must be one of {', '.join(KINDS)}, not '{kind}'")
    if kind == "pr" and not res.family.is_ordinal:
        raise MixedGLMError("kind='pr' is for ordinal models; use kind='mu' for the mean")
    design = res.design
    beta = res.params.to_numpy()
    if data is None:
        X, Z, offset = design.X, design.Z, design.offset
        codes = design.group_codes
        order = np.argsort(design.source_positions, kind="stable")
        index = design.row_index[order]
        X, Z, offset, codes = X[order], Z[order], offset[order], codes[order]
    else:
        X, Z, offset, codes = new_data_arrays(res, data)
        index = data.index
    xb = X @ beta + offset
    if kind == "xb":
        return pd.Series(xb, index=index, name="xb")
    if conditional:
        effects = res.random_effects(se=False)[list(design.z_names)].to_numpy()
        b = np.where(codes[:, None] >= 0, effects[np.maximum(codes, 0)], 0.0)
        eta = xb + np.sum(Z * b, axis=1)
        if kind == "eta":
            return pd.Series(eta, index=index, name="eta")
        if kind == "pr":
            return _category_frame(res, _category_probs(res, eta), index)
        return pd.Series(res.family.inverse_link(eta), index=index, name="mu")
    if kind == "eta":
        return pd.Series(xb, index=index, name="eta")
    if kind == "pr":
        probs = integrate_over_effects(res, xb, Z, lambda eta: _category_probs(res, eta))
        return _category_frame(res, probs, index)
    return pd.Series(marginal_mean(res, xb, Z), index=index, name="mu")


def _category_probs(res, eta: np.ndarray) -> np.ndarray:
    from mixedglm.families.ordinal import category_probabilities

    return category_probabilities(res.family.link, eta, res.aux)


def _category_frame(res, probs: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """One column per category, named by the category (Stata's ``predict p1-pK, pr``)."""
    columns = pd.Index(list(res.family.categories), name=res.design.response)
    return pd.DataFrame(probs, index=index, columns=columns)


def marginal_mean(res, xb: np.ndarray, Z: np.ndarray, n_points: int = 30) -> np.ndarray:
    """E[mu] over b ~ N(0, Sigma): closed form for the log and identity links, Gauss-Hermite
    quadrature (``n_points`` per dimension, at most 40,000 nodes) otherwise."""
    sigma = res.sigma
    link = res.family.link
    if link == "identity":
        return xb.copy()
    var_eta = np.einsum("ja,ab,jb->j", Z, sigma, Z)
    if link == "log":
        return np.exp(xb + 0.5 * var_eta)
    return integrate_over_effects(res, xb, Z, res.family.inverse_link, n_points)


def integrate_over_effects(res, xb: np.ndarray, Z: np.ndarray, func, n_points: int = 30):
    """E[func(xb + z'b)] over b ~ N(0, Sigma) by Gauss-Hermite quadrature (``n_points`` per
    dimension, at most 40,000 nodes). ``func`` maps an (rows, nodes) array of linear
    predictors to (rows, nodes) or (rows, nodes, K) values."""
    q = Z.shape[1]
    n = n_points if q == 1 else max(3, int(40_000 ** (1 / q)))
    rule = gauss_hermite_rule(n, q)
    lam = res.structure.lam(res.theta)
    weights = np.exp(rule.log_weights)
    out = None
    # chunks keep the (rows x nodes) array small
    shifts = Z @ lam
    for start in range(0, xb.shape[0], 20_000):
        sl = slice(start, start + 20_000)
        eta = xb[sl, None] + shifts[sl] @ rule.nodes.T
        values = np.tensordot(weights, np.moveaxis(func(eta), 1, 0), axes=1)
        if out is None:
            out = np.zeros((xb.shape[0], *values.shape[1:]))
        out[sl] = values
    return out if out is not None else np.zeros(xb.shape)
