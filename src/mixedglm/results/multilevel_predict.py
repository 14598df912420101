"""Predictions of a several-factor fit, conditional on the predicted random effects of all
factors or of a chosen subset (Stata's level choice; ``fixedonly`` for none)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.linalg import block_diag

from mixedglm.design.build import readable_name
from mixedglm.design.multilevel import _factor_codes
from mixedglm.errors import DataError, MixedGLMError
from mixedglm.inference.margins import MarginsModel

KINDS = ("xb", "eta", "mu")


def _fixed_matrix(res, data: pd.DataFrame) -> np.ndarray:
    base = res.design.base
    mm = base.fixed_spec.get_model_matrix(data, na_action="ignore")
    names = [readable_name(str(c)) for c in mm.columns]
    missing = [n for n in base.x_names if n not in names]
    if missing:
        raise DataError(
            f"the new data do not produce the fixed-effect column(s) {', '.join(missing)}"
        )
    values = np.asarray(mm, dtype=float)
    return values[:, [names.index(n) for n in base.x_names]]


def _offset(res, data: pd.DataFrame) -> np.ndarray:
    base = res.design.base
    out = np.zeros(len(data))
    for name, transform in ((base.offset_name, None), (base.exposure_name, np.log)):
        if name is None:
            continue
        if name not in data.columns:
            raise DataError(f"the new data lack the variable '{name}'")
        values = data[name].to_numpy(dtype=float)
        out += values if transform is None else transform(values)
    return out


def _random_columns(f, data: pd.DataFrame) -> np.ndarray:
    """Factor ``f``'s random-effect columns of ``data``."""
    return np.hstack(
        [
            np.asarray(spec.get_model_matrix(data, na_action="ignore"), dtype=float)
            for spec in f.specs
        ]
    )


def margins_model(res) -> MarginsModel:
    """See :meth:`MultilevelResults.margins_model`."""
    factors = res.design.factors

    def arrays(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        Z = np.hstack([_random_columns(f, data) for f in factors])
        return _fixed_matrix(res, data), Z, _offset(res, data)

    def lam(theta: np.ndarray) -> np.ndarray:
        blocks = [
            f.structure.lam(theta[sl]) for f, sl in zip(factors, res.theta_slices, strict=True)
        ]
        return block_diag(*blocks)

    return MarginsModel(tuple(res.design.base.x_names), arrays, lam)


def _chosen(res, factors) -> list[int]:
    if factors is None:
        return list(range(len(res.factors)))
    out = []
    for name in factors:
        out.append(res.design.factors.index(res.design.factor(name)))
    return out


def predict_multilevel(res, data, kind: str, factors, fixedonly: bool) -> pd.Series:
    """See :meth:`MultilevelResults.predict`."""
    if kind not in KINDS:
        raise MixedGLMError(f"kind must be one of {', '.join(KINDS)}, not '{kind}'")
    design = res.design
    base = design.base
    beta = res.params.to_numpy()
    chosen = [] if fixedonly else _chosen(res, factors)
    effects = res.random_effects(se=False)
    if data is None:
        order = np.argsort(base.source_positions, kind="stable")
        X, offset = base.X[order], base.offset[order]
        index = base.row_index[order]
        codes = {k: design.factors[k].codes[order] for k in chosen}
        Zs = {k: design.factors[k].Z[order] for k in chosen}
    else:
        X = _fixed_matrix(res, data)
        offset = _offset(res, data)
        index = data.index
        codes, Zs = {}, {}
        for k in chosen:
            f = design.factors[k]
            cols = f.columns
            if not all(c in data.columns for c in cols):
                codes[k] = np.full(len(data), -1)
            else:
                new_codes, new_labels = _factor_codes(data, cols)
                codes[k] = pd.Index(f.labels).get_indexer(new_labels[new_codes])
            Zs[k] = _random_columns(f, data)
    xb = X @ beta + offset
    if kind == "xb":
        return pd.Series(xb, index=index, name="xb")
    eta = xb.copy()
    for k in chosen:
        f = design.factors[k]
        b = effects[f.name][list(f.structure.columns)].to_numpy()
        c = codes[k]
        bb = np.where(c[:, None] >= 0, b[np.maximum(c, 0)], 0.0)
        eta += np.sum(Zs[k] * bb, axis=1)
    if kind == "eta":
        return pd.Series(eta, index=index, name="eta")
    return pd.Series(res.family.inverse_link(eta), index=index, name="mu")
