"""Small simulated nested data and the brute-force (non-adaptive Gauss-Hermite) nested
integral that the nested quadrature tests check against."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import gammaln


def simulate_nested(seed: int = 1, n_top: int = 6, n_mid: int = 3, per: int = 4) -> pd.DataFrame:
    """``n_top`` clusters x ``n_mid`` units x ``per`` rows, three outcomes."""
    rng = np.random.default_rng(seed)
    top = np.repeat(np.arange(n_top), n_mid * per)
    mid = np.repeat(np.arange(n_top * n_mid), per)
    x = rng.normal(size=top.size)
    eta = 0.2 + 0.5 * x + rng.normal(0, 0.8, n_top)[top] + rng.normal(0, 0.6, n_top * n_mid)[mid]
    return pd.DataFrame(
        {
            "top": top,
            "mid": mid,
            "x": x,
            "yb": rng.binomial(1, 1 / (1 + np.exp(-eta))),
            "yp": rng.poisson(np.exp(eta)),
        }
    )


def brute_force_nested(data, y, kind, cons, slope, s_top, s_mid, n_points=60) -> float:
    """The nested integral by plain (non-adaptive) Gauss-Hermite, ``n_points`` per level."""
    t, w = np.polynomial.hermite_e.hermegauss(n_points)
    w = w / np.sqrt(2 * np.pi)
    total = 0.0
    for _, dg in data.groupby("top"):
        log_inner = np.zeros(n_points)
        for _, dm in dg.groupby("mid"):
            xb = cons + slope * dm["x"].to_numpy()
            yy = dm[y].to_numpy()
            eta = xb[None, None, :] + s_top * t[:, None, None] + s_mid * t[None, :, None]
            if kind == "bernoulli":
                ll = yy * eta - np.logaddexp(0.0, eta)
            else:
                ll = yy * eta - np.exp(eta) - gammaln(yy + 1)
            log_inner += np.log(np.exp(ll.sum(axis=-1)) @ w)
        total += np.log(np.exp(log_inner) @ w)
    return float(total)
