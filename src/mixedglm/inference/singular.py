"""Singular (boundary) fits, noted as lme4 notes them: "boundary (singular) fit".

The random-effects covariance is singular when a variance is (close to) zero or a
correlation (close to) +-1: the estimate sits on the boundary of the parameter space, its
interval is not meaningful, and the model is simpler than the one written. The criterion is
lme4's (``isSingular``): the smallest singular value of the relative covariance factor below
1e-4. Here the factor is ``Lambda`` scaled by the root mean square of each random-effect
column (and, for gaussian models, relative to the residual SD, as in lme4).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

SINGULAR_TOL = 1e-4


def singular_notes(res) -> list[str]:
    """``["note: boundary (singular) fit: ..."]`` for a singular fit of ``res`` (a
    :class:`~mixedglm.results.glmm.GLMMResults`), else ``[]``."""
    structure = res.structure
    Z = res.design.Z
    if Z.shape[1] == 0:
        return []
    scales = np.sqrt(np.mean(Z**2, axis=0))
    scales[scales == 0] = 1.0
    lam = structure.lam(res.theta) * scales[:, None]
    if res.family.name == "gaussian" and res.aux.size:
        lam = lam / np.exp(res.aux[0])
    if not np.all(np.isfinite(lam)):
        return []
    singular = np.linalg.svd(lam, compute_uv=False)
    if singular.size and singular.min() >= SINGULAR_TOL:
        return []
    cov = lam @ lam.T
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    cols = structure.columns
    parts = [f"var({cols[a]}) near zero" for a in range(len(cols)) if sd[a] < SINGULAR_TOL]
    for a in range(len(cols)):
        for b in range(a + 1, len(cols)):
            if sd[a] >= SINGULAR_TOL and sd[b] >= SINGULAR_TOL:
                r = cov[a, b] / (sd[a] * sd[b])
                if abs(r) > 1 - 1e-4:
                    parts.append(f"corr({cols[a]},{cols[b]}) = {r:.4f}")
    what = "; ".join(parts) if parts else "a combination of the random effects has no variance"
    group = res.design.group.name if res.design.group is not None else ""
    return [
        f"note: boundary (singular) fit: the random-effects covariance of {group} is singular "
        f"({what}); its interval is not meaningful, and a simpler random part (fewer terms, "
        "or cov='independent') fits as well"
    ]


def with_notes(res, notes: Iterable[str], printed: Iterable[str] = ()):
    """``res`` with ``notes`` added after its own (each once, in order) and ``printed``
    recorded as the notes already shown during the fit (not to be shown again)."""
    new = [n for n in dict.fromkeys(notes) if n not in res.notes]
    return dataclasses.replace(res, notes=(*res.notes, *new), notes_printed=tuple(printed))
