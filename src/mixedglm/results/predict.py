"""Predictions of a fitted GLMM: linear predictors and means, conditional on the predicted
random effects or marginal over them, on the estimation data or on new data."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
from formulaic.errors import FormulaicError

from mixedglm.design.build import readable_name
from mixedglm.engines.quadrature import gauss_hermite_rule
from mixedglm.errors import MixedGLMError, PredictionError
from mixedglm.formula.idioms import derived_column

KINDS = ("xb", "eta", "mu", "pr")


_FACTOR = re.compile(r"^C\(\s*([^,)]+?)\s*[,)]")


def _factor_variable(name: str) -> str:
    """The data column of a categorical factor: ``C(f, ...)`` -> ``f``, ``f`` -> ``f``."""
    match = _FACTOR.match(name)
    return (match.group(1) if match else name).strip("` ")


def _same_value(value: object, levels: list) -> bool:
    if value in levels:
        return True
    try:
        return float(value) in [float(v) for v in levels]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def check_levels(spec, frame: pd.DataFrame) -> None:
    """Every level of every factor in ``frame`` was seen in the fit (R's "factor has new
    level"); formulaic would code an unseen level as the base level, silently."""
    for name, (kind, state) in (getattr(spec, "encoder_state", None) or {}).items():
        levels = state.get("categories") if isinstance(state, dict) else None
        if getattr(kind, "value", kind) != "categorical" or levels is None:
            continue
        var = _factor_variable(str(name))
        if var not in frame.columns:
            continue
        values = pd.unique(frame[var].dropna())
        new = [v for v in values if not _same_value(v, list(levels))]
        if new:
            shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in new[:3])
            known = ", ".join(repr(v) for v in list(levels)[:8])
            raise PredictionError(
                f"factor '{var}' has new level{'s' if len(new) > 1 else ''} {shown} in the new "
                f"data, not seen in the fit (levels: {known}{', ...' if len(levels) > 8 else ''})"
            )


def _model_matrix(spec, frame: pd.DataFrame, what: str) -> tuple[np.ndarray, list[str]]:
    """The columns ``spec`` builds on ``frame`` and their names (new levels refused)."""
    check_levels(spec, frame)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # formulaic's category warnings: checked above
            mm = spec.get_model_matrix(frame, na_action="ignore")
    except FormulaicError as err:
        name = re.search(
            r"name '([^']+)' is not defined|`([^`]+)` is not present in the dataset", str(err)
        )
        if name:
            raise PredictionError(
                f"the new data lack the variable '{name.group(1) or name.group(2)}' (needed by "
                f"the {what} part)"
            ) from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PredictionError(f"the new data cannot be used for the {what} part: {first}") from None
    names = [readable_name(str(c)) for c in mm.columns]
    return np.asarray(mm, dtype=float), names


def _matrix(spec, frame: pd.DataFrame, wanted: tuple[str, ...], what: str) -> np.ndarray:
    values, names = _model_matrix(spec, frame, what)
    missing = [n for n in wanted if n not in names]
    if missing:
        raise PredictionError(
            f"the new data do not produce the {what} column(s) {', '.join(missing)}"
        )
    return values[:, [names.index(n) for n in wanted]]


def match_clusters(labels: np.ndarray, values: pd.Series, name: str) -> np.ndarray:
    """Codes of ``values`` among the fitted cluster ``labels`` (-1: not in the fit), matched
    by value whatever the dtypes: ``"5"``, ``5`` and ``5.0`` are the same cluster."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    lookup = pd.Index(labels)
    if pd.api.types.is_numeric_dtype(lookup.dtype) and not pd.api.types.is_bool_dtype(lookup):
        converted = pd.to_numeric(values, errors="coerce")
        bad = values.notna() & converted.isna()
        if bad.any():
            raise PredictionError(
                f"cluster id {values[bad].iloc[0]!r} in '{name}' is not a number, but the "
                f"model was fitted on numeric ids of '{name}'"
            )
        return lookup.get_indexer(converted.astype(float))
    if all(isinstance(v, str) for v in labels) and not pd.api.types.is_string_dtype(values):

        def text(v: object) -> object:
            if isinstance(v, float | np.floating) and float(v).is_integer():
                return str(int(v))
            # pd.isna takes any object; the stubs' overloads only name pandas' scalar types
            return v if pd.isna(v) else str(v)  # type: ignore[call-overload]

        values = values.map(text)
    return lookup.get_indexer(values)


def new_data_arrays(
    res, data: pd.DataFrame, u0: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X``, ``Z``, offset and each row's cluster code (-1 for a cluster not in the fit or
    any cluster with ``u0``)."""
    if not isinstance(data, pd.DataFrame):
        raise PredictionError(f"new data must be a pandas DataFrame, not {type(data).__name__}")
    design = res.design
    X = _matrix(design.fixed_spec, data, design.x_names, "fixed-effect")
    Z = np.hstack([_model_matrix(spec, data, "random-effect")[0] for spec in design.random_specs])
    offset = np.zeros(len(data))
    for name, transform in ((design.offset_name, None), (design.exposure_name, np.log)):
        if name is None:
            continue
        values = derived_column(data, name, "offset" if transform is None else "exposure")
        if transform is not None and np.any(values <= 0):
            raise PredictionError(f"exposure variable '{name}' must be positive in the new data")
        offset += values if transform is None else transform(values)
    group = design.group
    if u0:
        codes = np.full(len(data), -1)
    elif group.name not in data.columns:
        raise PredictionError(
            f"the new data have no column '{group.name}' (the grouping variable): a conditional "
            "prediction needs each row's cluster; use conditional=False for the prediction "
            "averaged over the random effects, or u0=True for random effects set to zero"
        )
    else:
        if data[group.name].isna().any():
            n = int(data[group.name].isna().sum())
            raise PredictionError(
                f"{n} row{'s' if n != 1 else ''} of the new data ha{'ve' if n != 1 else 's'} no "
                f"value of the grouping variable '{group.name}': give it, or use u0=True for "
                "random effects set to zero"
            )
        codes = match_clusters(group.labels, data[group.name], group.name)
    return X, Z, offset, codes


def predict(
    res, data: pd.DataFrame | None, kind: str, conditional: bool, u0: bool = False
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
        X, Z, offset, codes = new_data_arrays(res, data, u0 or not conditional or kind == "xb")
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
