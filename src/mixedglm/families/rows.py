"""A family's per-observation derivatives over arrays of linear predictors, for numpy code.

The vectorised quadrature (:mod:`mixedglm.engines.aghq.vectorised`) evaluates the family at
many (node, observation) pairs at once. These kernels loop over those pairs and call the
family's one definition through :mod:`mixedglm.families.dispatch`, so no family is written
twice. They are kept tiny (one per derivative kind, each compiled only when used) because
they exist to be compiled quickly on a first fit.

``eta`` is ``(B, M)``: ``B`` blocks (say, quadrature nodes) of the ``M`` observations whose
outcomes are ``y`` and trials ``n`` ``(M,)``. No observation weights are applied here.
"""

from __future__ import annotations

import numpy as np

from mixedglm.families.dispatch import aux_derivs, eta_derivs, fisher_weight
from mixedglm.jit import kernel


@kernel
def eta_derivs_rows(fam, y: np.ndarray, n: np.ndarray, eta: np.ndarray, aux: np.ndarray):
    """The log-likelihood kernel and its eta-derivatives 1-3 at every ``eta[b, j]``: four
    ``(B, M)`` arrays."""
    n_blocks, m = eta.shape
    l0 = np.empty((n_blocks, m))
    d1 = np.empty((n_blocks, m))
    d2 = np.empty((n_blocks, m))
    d3 = np.empty((n_blocks, m))
    for b in range(n_blocks):
        for j in range(m):
            v0, v1, v2, v3 = eta_derivs(fam, y[j], n[j], eta[b, j], aux)
            l0[b, j] = v0
            d1[b, j] = v1
            d2[b, j] = v2
            d3[b, j] = v3
    return l0, d1, d2, d3


@kernel
def aux_derivs_rows(fam, y: np.ndarray, n: np.ndarray, eta: np.ndarray, aux: np.ndarray):
    """The derivatives in the ancillary parameters at every ``eta[b, j]``: ``l_a``, ``l_ea``,
    ``l_eea`` ``(B, M, n_aux)`` and ``l_aa`` ``(B, M, n_aux, n_aux)``."""
    n_blocks, m = eta.shape
    n_aux = aux.shape[0]
    l_a = np.zeros((n_blocks, m, n_aux))
    l_ea = np.zeros((n_blocks, m, n_aux))
    l_eea = np.zeros((n_blocks, m, n_aux))
    l_aa = np.zeros((n_blocks, m, n_aux, n_aux))
    for b in range(n_blocks):
        for j in range(m):
            aux_derivs(
                fam, y[j], n[j], eta[b, j], aux, l_a[b, j], l_ea[b, j], l_eea[b, j], l_aa[b, j]
            )
    return l_a, l_ea, l_eea, l_aa


@kernel
def fisher_rows(fam, n: np.ndarray, eta: np.ndarray):
    """The expected-information weight and its eta-derivative at every ``eta[b, j]``: two
    ``(B, M)`` arrays."""
    n_blocks, m = eta.shape
    fw = np.empty((n_blocks, m))
    dfw = np.empty((n_blocks, m))
    for b in range(n_blocks):
        for j in range(m):
            v0, v1 = fisher_weight(fam, n[j], eta[b, j])
            fw[b, j] = v0
            dfw[b, j] = v1
    return fw, dfw
