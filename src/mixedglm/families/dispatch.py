"""How the compiled engines reach a family's derivatives, one family at a time.

A family hands the engines a :class:`FamilyToken`. numba types each token by its key (the
family, its link and a hash of the source of its kernels), so a kernel called with the token
of, say, the Poisson log family is compiled for that family alone, and cached under that key:
a fit compiles only the family it uses, a new family is a new key (no switch in the engines
to edit), and a changed family source is a new key too (never stale code).

Inside compiled code the engines call the three generic functions below with the token as
first argument; their overloads resolve, at compile time, to the family's own functions:

* ``eta_derivs(fam, y, n, eta, aux) -> (l, dl/deta, d2l/deta2, d3l/deta3)``: the
  log-likelihood kernel of one observation (without its normalising constant) and three
  derivatives in the linear predictor; ``n`` = binomial trials, ``aux`` = the family's
  ancillary parameters;
* ``aux_derivs(fam, y, n, eta, aux, l_a, l_ea, l_eea, l_aa)``: derivatives in the ancillary
  parameters, written into the arrays (see :class:`KernelSet`);
* ``fisher_weight(fam, n, eta) -> (W, dW/deta)``: the expected information, for lme4-style
  curvature.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from dataclasses import dataclass
from functools import cache

import numba
import numpy as np
from numba.core import types
from numba.extending import (
    NativeValue,
    models,
    overload,
    register_model,
    typeof_impl,
    unbox,
)

from mixedglm.jit import kernel


@kernel
def no_aux_derivs(y, n, eta, aux, l_a, l_ea, l_eea, l_aa) -> None:
    """For families without ancillary parameters."""


@kernel
def no_fisher_weight(n: float, eta: float) -> tuple[float, float]:
    """For families fitted with the observed curvature only."""
    return 0.0, 0.0


@kernel(inline=True)
def aux_buffers(n_aux: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Zeroed ``l_a``, ``l_ea``, ``l_eea`` ``(n_aux,)`` and ``l_aa`` ``(n_aux, n_aux)``: the
    arrays :func:`aux_derivs` writes into."""
    return np.zeros(n_aux), np.zeros(n_aux), np.zeros(n_aux), np.zeros((n_aux, n_aux))


@dataclass(frozen=True)
class KernelSet:
    """A family-and-link's compiled functions (numba dispatchers).

    ``eta_derivs(y, n, eta, aux)``; ``aux_derivs(y, n, eta, aux, l_a, l_ea, l_eea, l_aa)``
    writes ``l_a[a]`` = dl/da, ``l_ea[a]`` = d2l/(deta da), ``l_eea[a]`` = d3l/(deta2 da),
    ``l_aa[a, b]`` = d2l/(da db); ``fisher_weight(n, eta)`` returns the expected information
    weight and its eta-derivative.
    """

    eta_derivs: object
    aux_derivs: object = no_aux_derivs
    fisher_weight: object = no_fisher_weight

    def source_hash(self) -> str:
        """A hash of the source files that define these functions."""
        digest = hashlib.sha256()
        files = set()
        for fn in (self.eta_derivs, self.aux_derivs, self.fisher_weight):
            module = sys.modules.get(getattr(fn, "__module__", ""), None)
            path = getattr(module, "__file__", None)
            if path:
                files.add(path)
            else:  # no file (an interactive definition): hash the function itself
                digest.update(_function_fingerprint(getattr(fn, "py_func", fn)))
        for path in sorted(files):
            with open(path, "rb") as handle:
                digest.update(handle.read())
        return digest.hexdigest()[:12]


def _function_fingerprint(fn: object) -> bytes:
    """The source of ``fn``, or (code typed into ``exec`` or a notebook cell without a
    file) its bytecode, constants and names: what identifies its compiled code."""
    try:
        return inspect.getsource(fn).encode()  # type: ignore[arg-type]
    except (OSError, TypeError):
        code = fn.__code__  # type: ignore[attr-defined]
        return code.co_code + repr((code.co_consts, code.co_names)).encode()


_REGISTRY: dict[str, KernelSet] = {}


class FamilyToken:
    """A family's handle for compiled code (see the module doc)."""

    def __init__(self, key: str, kernels: KernelSet) -> None:
        self.key = key
        self.kernels = kernels
        _REGISTRY[key] = kernels

    def __repr__(self) -> str:
        return f"FamilyToken({self.key!r})"

    def __reduce__(self):
        """Unpickled (in a process that compiles for this one) it registers again."""
        return (FamilyToken, (self.key, self.kernels))


@cache
def make_token(name: str, kernels: KernelSet) -> FamilyToken:
    """The token of the family called ``name`` (family, link, variant) with ``kernels``."""
    return FamilyToken(f"{name}@{kernels.source_hash()}", kernels)


class FamilyTokenType(types.Dummy):
    """numba's type of a :class:`FamilyToken`: one type per key."""

    def __init__(self, token_key: str) -> None:
        self.token_key = token_key
        super().__init__(name=f"FamilyToken[{token_key}]")

    @property
    def key(self) -> str:
        return self.token_key

    def __reduce__(self):
        return (FamilyTokenType, (self.token_key,))


@typeof_impl.register(FamilyToken)
def _typeof_token(val: FamilyToken, c) -> FamilyTokenType:
    return FamilyTokenType(val.key)


register_model(FamilyTokenType)(models.OpaqueModel)


@unbox(FamilyTokenType)
def _unbox_token(typ, obj, c):
    return NativeValue(c.context.get_dummy_value())


def _kernels_of(fam) -> KernelSet:
    if not isinstance(fam, FamilyTokenType):
        raise numba.core.errors.TypingError("expected a FamilyToken")
    if fam.token_key not in _REGISTRY:
        raise numba.core.errors.TypingError(f"family {fam.token_key} is not registered")
    return _REGISTRY[fam.token_key]


def eta_derivs(fam, y, n, eta, aux):
    """Stub: compiled code only (see the module doc)."""
    raise NotImplementedError("eta_derivs is for compiled code; call the family's kernels")


def aux_derivs(fam, y, n, eta, aux, l_a, l_ea, l_eea, l_aa):
    """Stub: compiled code only (see the module doc)."""
    raise NotImplementedError("aux_derivs is for compiled code; call the family's kernels")


def fisher_weight(fam, n, eta):
    """Stub: compiled code only (see the module doc)."""
    raise NotImplementedError("fisher_weight is for compiled code; call the family's kernels")


@overload(eta_derivs)
def _eta_derivs(fam, y, n, eta, aux):
    fn = _kernels_of(fam).eta_derivs

    def impl(fam, y, n, eta, aux):
        return fn(y, n, eta, aux)

    return impl


@overload(aux_derivs)
def _aux_derivs(fam, y, n, eta, aux, l_a, l_ea, l_eea, l_aa):
    fn = _kernels_of(fam).aux_derivs

    def impl(fam, y, n, eta, aux, l_a, l_ea, l_eea, l_aa):
        fn(y, n, eta, aux, l_a, l_ea, l_eea, l_aa)

    return impl


@overload(fisher_weight)
def _fisher_weight(fam, n, eta):
    fn = _kernels_of(fam).fisher_weight

    def impl(fam, n, eta):
        return fn(n, eta)

    return impl


__all__ = [
    "FamilyToken",
    "KernelSet",
    "aux_buffers",
    "aux_derivs",
    "eta_derivs",
    "fisher_weight",
    "make_token",
    "no_aux_derivs",
    "no_fisher_weight",
]
