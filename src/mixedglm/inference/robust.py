"""Robust and cluster-robust (sandwich) covariance matrices: Stata's ``vce(robust)`` and
``vce(cluster VAR)``.

The sandwich is ``H^-1 (sum_c s_c s_c') H^-1 G/(G-1)``: ``H`` the Hessian of the
log-likelihood, ``s_c`` the score of cluster ``c`` (the sum of the scores of the top-level
clusters it holds) and ``G`` the number of clusters, with Stata's small-sample factor. For a
mixed model ``vce(robust)`` clusters at the top level (the clusters of the random effects are
the independent units); ``vce(cluster VAR)`` needs every top-level cluster inside one cluster
of ``VAR`` (VAR may be coarser, never finer), as Stata requires.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixedglm.errors import DataError, MixedGLMError

__all__ = ["VCEInfo", "cluster_map", "parse_vce", "sandwich"]


@dataclass(frozen=True)
class VCEInfo:
    """How the reported covariance was computed: ``kind`` is ``robust`` or ``cluster``;
    ``variable`` the clustering variable; ``n_clusters`` the number of its clusters."""

    kind: str
    variable: str
    n_clusters: int

    @property
    def note(self) -> str:
        """Stata's note above the table."""
        return f"(Std. Err. adjusted for {self.n_clusters:,} clusters in {self.variable})"

    def to_dict(self) -> dict:
        return {"type": self.kind, "cluster": self.variable, "n_clusters": self.n_clusters}


def parse_vce(vce: str | None) -> tuple[str, str | None] | None:
    """``None``/``"oim"`` -> ``None``; ``"robust"`` -> ``("robust", None)``;
    ``"cluster VAR"`` -> ``("cluster", "VAR")`` (Stata's abbreviations accepted)."""
    if vce is None:
        return None
    words = str(vce).replace("(", " ").replace(")", " ").split()
    if not words:
        return None
    head = words[0].lower()
    if head in ("oim", "opg") and len(words) == 1:
        if head == "opg":
            raise MixedGLMError("vce='opg' is not supported: use 'oim', 'robust' or 'cluster VAR'")
        return None
    if len(words) == 1 and "robust".startswith(head) and len(head) >= 1:
        return "robust", None
    if len(head) >= 2 and "cluster".startswith(head):
        if len(words) != 2:
            raise MixedGLMError(f"vce='{vce}': write 'cluster VAR' with one clustering variable")
        return "cluster", words[1]
    raise MixedGLMError(f"unknown vce '{vce}': use 'oim', 'robust' or 'cluster VAR'")


def cluster_map(
    top_codes: np.ndarray, values: pd.Series, variable: str, top_name: str
) -> tuple[np.ndarray, int]:
    """Per top-level cluster, the code of its ``VAR`` cluster.

    ``top_codes`` ``(N,)`` top-level cluster of each row; ``values`` ``(N,)`` the clustering
    variable on the same rows. Raises :class:`DataError` if ``VAR`` is missing or splits a
    top-level cluster.
    """
    if values.isna().any():
        n = int(values.isna().sum())
        raise DataError(
            f"cluster variable '{variable}' is missing in {n} observation"
            f"{'s' if n != 1 else ''} of the estimation sample"
        )
    codes, _ = pd.factorize(values, sort=True)
    n_top = int(top_codes.max()) + 1 if top_codes.size else 0
    first = np.full(n_top, -1, dtype=np.int64)
    first[top_codes[::-1]] = codes[::-1]
    if np.any(first[top_codes] != codes):
        raise DataError(
            f"cluster variable '{variable}' splits clusters of {top_name}: the highest-level "
            f"groups ({top_name}) must be nested within the clusters of {variable}"
        )
    return first, int(codes.max()) + 1


def sandwich(
    cov: np.ndarray, scores: np.ndarray, groups: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """``cov (S'S) cov G/(G-1)`` with ``S`` the scores summed within ``groups``.

    ``cov`` ``(P, P)`` is ``(-H)^-1`` (NaN rows/columns for parameters held at a boundary
    stay NaN); ``scores`` ``(G0, P)`` per top-level cluster; ``groups`` ``(G0,)`` their
    cluster codes (``None``: each top-level cluster its own). Returns the matrix and ``G``.
    """
    if groups is not None:
        n_groups = int(groups.max()) + 1
        summed = np.zeros((n_groups, scores.shape[1]))
        np.add.at(summed, groups, scores)
        scores = summed
    g = scores.shape[0]
    if g < 2:
        raise MixedGLMError("a cluster-robust covariance needs at least two clusters")
    keep = ~np.isnan(np.diag(cov))
    inv = cov[np.ix_(keep, keep)]
    s = scores[:, keep]
    meat = s.T @ s
    out = np.full_like(cov, np.nan)
    out[np.ix_(keep, keep)] = inv @ meat @ inv * (g / (g - 1.0))
    return out, g
