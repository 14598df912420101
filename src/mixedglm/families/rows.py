"""A family's per-observation derivatives over arrays of linear predictors, for numpy code.

The vectorised quadrature (:mod:`mixedglm.engines.aghq.vectorised`) evaluates the family at
many (node, observation) pairs at once. These kernels loop over those pairs and call the
family's one definition through :mod:`mixedglm.families.dispatch`, so no family is written
twice. They are kept tiny (one per derivative kind, each compiled only when used) because
they exist to be compiled quickly on a first fit.

``eta`` is ``(B, M)``: ``B`` blocks (say, quadrature nodes) of the ``M`` observations whose
outcomes are ``y`` and trials ``n`` ``(M,)``. Each kernel fills its output arrays (of
``eta``'s shape, with a trailing ``(n_aux,)`` or ``(n_aux, n_aux)`` for the ancillary
parameters' derivatives, which start zeroed) for the observations ``lo .. hi - 1`` and
releases the GIL, so that threads can share the observations. No observation weights are
applied here.
"""

from __future__ import annotations

from mixedglm.families.dispatch import aux_derivs, eta_derivs, fisher_weight
from mixedglm.jit import kernel


@kernel(nogil=True)
def eta_derivs_rows(fam, y, n, eta, aux, l0, d1, d2, d3, lo: int, hi: int) -> None:
    """The log-likelihood kernel and its eta-derivatives 1-3 at every ``eta[b, j]``."""
    for b in range(eta.shape[0]):
        for j in range(lo, hi):
            v0, v1, v2, v3 = eta_derivs(fam, y[j], n[j], eta[b, j], aux)
            l0[b, j] = v0
            d1[b, j] = v1
            d2[b, j] = v2
            d3[b, j] = v3


@kernel(nogil=True)
def aux_derivs_rows(fam, y, n, eta, aux, l_a, l_ea, l_eea, l_aa, lo: int, hi: int) -> None:
    """The derivatives in the ancillary parameters at every ``eta[b, j]``: ``l_a``,
    ``l_ea``, ``l_eea`` ``(B, M, n_aux)`` and ``l_aa`` ``(B, M, n_aux, n_aux)``."""
    for b in range(eta.shape[0]):
        for j in range(lo, hi):
            aux_derivs(
                fam, y[j], n[j], eta[b, j], aux, l_a[b, j], l_ea[b, j], l_eea[b, j], l_aa[b, j]
            )


@kernel(nogil=True)
def fisher_rows(fam, n, eta, fw, dfw, lo: int, hi: int) -> None:
    """The expected-information weight and its eta-derivative at every ``eta[b, j]``."""
    for b in range(eta.shape[0]):
        for j in range(lo, hi):
            v0, v1 = fisher_weight(fam, n[j], eta[b, j])
            fw[b, j] = v0
            dfw[b, j] = v1
