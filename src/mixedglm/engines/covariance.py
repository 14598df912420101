"""Covariance structures of a cluster's random effects, parameterised linearly.

The random effects are ``b = Lambda u`` with ``u ~ N(0, I)`` and ``Sigma = Lambda Lambda'``.
Every structure here writes ``Lambda = sum_l theta_l E_l`` with fixed matrices ``E_l``, so
the linear predictor is linear in ``theta`` at a fixed ``u`` (which keeps the engine's
derivatives simple) and ``theta`` is unconstrained (flipping the sign of a column of
``Lambda`` leaves ``Sigma`` unchanged):

* ``unstructured``: ``Lambda`` lower triangular (lme4's ``theta``, without its bounds);
* ``independent``: ``Lambda`` diagonal (the SDs);
* ``identity``: ``Lambda = sigma I``;
* ``exchangeable``: ``Lambda = alpha I + gamma J`` (``J`` all ones), a symmetric square root
  of ``Sigma = a I + c J``; it covers every positive semi-definite exchangeable matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixedglm.errors import MixedGLMError

STRUCTURES = ("unstructured", "independent", "exchangeable", "identity")


@dataclass(frozen=True)
class CovarianceStructure:
    """A structure for ``q`` random-effect columns with the names of those columns."""

    kind: str
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in STRUCTURES:
            raise MixedGLMError(
                f"unknown covariance structure '{self.kind}': use one of {', '.join(STRUCTURES)}"
            )

    @property
    def q(self) -> int:
        return len(self.columns)

    @property
    def effective_kind(self) -> str:
        """With one column every structure is the same: a single variance."""
        return "independent" if self.q == 1 else self.kind

    def basis(self) -> np.ndarray:
        """The matrices ``E_l`` as an array ``(n_theta, q, q)``."""
        q = self.q
        kind = self.effective_kind
        if kind == "unstructured":
            mats = []
            for col in range(q):
                for row in range(col, q):
                    e = np.zeros((q, q))
                    e[row, col] = 1.0
                    mats.append(e)
            return np.array(mats)
        if kind == "independent":
            return np.array([np.diag(np.eye(q)[l]) for l in range(q)])
        if kind == "identity":
            return np.eye(q)[None, :, :]
        return np.array([np.eye(q), np.ones((q, q))])

    @property
    def n_theta(self) -> int:
        return self.basis().shape[0]

    def lam(self, theta: np.ndarray) -> np.ndarray:
        """``Lambda(theta)``."""
        return np.tensordot(theta, self.basis(), axes=1)

    def sigma(self, theta: np.ndarray) -> np.ndarray:
        """``Sigma = Lambda Lambda'``."""
        lam = self.lam(theta)
        return lam @ lam.T

    def start(self, column_scales: np.ndarray) -> np.ndarray:
        """Start values: SD 0.5 on the scale of each column (RMS of the column)."""
        sd = 0.5 / np.maximum(column_scales, 1e-8)
        kind = self.effective_kind
        if kind == "unstructured":
            out = []
            for col in range(self.q):
                for row in range(col, self.q):
                    out.append(sd[col] if row == col else 0.0)
            return np.array(out)
        if kind == "independent":
            return sd.copy()
        if kind == "identity":
            return np.array([float(np.exp(np.mean(np.log(sd))))])
        return np.array([float(np.exp(np.mean(np.log(sd)))), 0.0])

    def display_order(self) -> list[int]:
        """Column order of Stata's output: slopes first, ``_cons`` last."""
        idx = list(range(self.q))
        cons = [i for i in idx if self.columns[i] == "_cons"]
        return [i for i in idx if i not in cons] + cons
