"""The Laplace approximation over all random effects of any set of grouping factors
(nested or crossed), as lme4's ``glmer`` (``nAGQ = 1``) and glmmTMB compute it.

With ``b = Lambda(theta) u``, ``u ~ N(0, I)`` and ``A = Z Lambda`` the log-likelihood is

    L(beta, theta, aux) = sum_i l_i(eta_i(u^)) - |u^|^2 / 2 - log det H / 2,
    H = A' W A + I,   W = diag(-l_i''),

at the joint mode ``u^`` of all factors' effects, found by penalised iteratively reweighted
least squares (Newton on ``u`` with step halving, warm started from the last mode: where
theta changed, from the ``u`` that keeps the last mode's effects ``b = Lambda u``, if the
penalised log-likelihood is higher there). The engine keeps its last PIRLS state and
gradient, so that an evaluation at the same parameters (the optimiser's Hessian where it
has just accepted a log-likelihood) costs nothing.

``H`` is factorised blockwise, as MixedModels.jl does: the factor with the most random
effects (the *block factor*: subjects, or the innermost level of a nested model) gives a
block-diagonal ``D``, all other factors together a dense Schur complement
``S = C - B' D^-1 B``, dense within each connected component of the other factors (one
small block per top cluster of a nested model, one block for crossed factors), factorised
and inverted by numba loops (:mod:`mixedglm.engines.laplace_kernels`), large blocks by
LAPACK on one BLAS thread (:mod:`mixedglm.engines.laplace_dense`).
Its size is the number of random effects of the other factors, so the engine suits designs
where those have up to a few thousand levels.

The gradient is exact: the envelope theorem for ``u^`` plus the derivative of ``log det H``
through ``W`` (third derivatives of the family), through ``u^`` (one more solve with ``H``)
and through ``Lambda``; the per-row blocks of ``H^-1`` it needs come from the blocked
inverse. The Hessian for the standard errors is the symmetrised central difference of the
exact gradient (lme4's ``vcov`` is a finite-difference Hessian of its deviance; crossed
fits: the forward difference at a smaller step, ``forward_covariance``); Newton's
steps use forward differences (:mod:`mixedglm.engines.laplace_hessian`; crossed fits the
profiled Hessian), held and BFGS-updated near the optimum by the fit
(:mod:`mixedglm.optim.held`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np

from mixedglm.blas_threads import one_blas_thread
from mixedglm.design.multilevel import MultilevelDesign
from mixedglm.engines import laplace_dense, laplace_hessian
from mixedglm.engines import laplace_kernels as kern
from mixedglm.engines.base import Contributions, FactorParameters, Posterior
from mixedglm.engines.laplace_pattern import build_pattern, level_indices, rows_by_level
from mixedglm.engines.laplace_rows import RowChunks
from mixedglm.engines.parallel import cost_chunks, run_summed, use_threads
from mixedglm.errors import MixedGLMError
from mixedglm.families import Family
from mixedglm.optim import Evaluation

if TYPE_CHECKING:
    import numpy.typing as npt

MAX_REST = 8000
MAX_SHARED = 4_000_000  # entries of S: above this, the Schur complement on one thread
PIRLS_TOL = 1e-22
# the decrement at which PIRLS stops where its modes serve only a start (``loose``): the
# log likelihood then within about 1e-3 (on the crossed benchmark 5 factorisations, not 7)
LOOSE_DECREMENT = 1e-6
PIRLS_MAXITER = 200


class _NotFinite(Exception):
    """PIRLS met a non-positive-definite or non-finite system."""


class _Below(Exception):
    """PIRLS stopped: the log likelihood is below ``args[0]`` (:meth:`loglik_above`)."""


class JointLaplaceEngine(FactorParameters):
    """The joint Laplace log-likelihood of ``[beta, theta_1 .. theta_K, aux]``; ``theta_k``
    parameterises factor ``k``'s ``Lambda`` (formula order, see
    :mod:`mixedglm.engines.covariance`)."""

    def __init__(
        self,
        design: MultilevelDesign,
        family: Family,
        fd_step: float = laplace_hessian.COVARIANCE_STEP,
    ) -> None:
        self.exact = True  # order-2 evaluations: exact Hessian (False: newton_hessian)
        self.loose = False  # PIRLS to LOOSE_DECREMENT only (the crossed start's first node)
        # the exact Hessian by forward differences (crossed factors) or central ones
        self.forward_covariance = not design.nested
        base = design.base
        self.design = design
        self.family = family
        self.fd_step = fd_step
        self.X = np.ascontiguousarray(base.X)
        self.y = np.ascontiguousarray(base.y)
        self.trials = np.ascontiguousarray(base.trials)
        self.offset = np.ascontiguousarray(base.offset)
        self.const_rows = family.log_constant(self.y, self.trials)
        self.const = float(np.sum(self.const_rows))
        factors = design.factors
        sizes = [f.n_levels * f.q for f in factors]
        self.block = int(np.argmax(sizes))
        others = [k for k in range(len(factors)) if k != self.block]
        fb = factors[self.block]
        self.q1, self.g1 = fb.q, fb.n_levels
        self.m = int(sum(sizes[k] for k in others))
        self.n_u = self.g1 * self.q1 + self.m
        n = base.n_obs
        # coordinates: the block factor's q1, then each other factor's q_k
        self._coords: list[tuple[int, int]] = [(self.block, 0)]  # (factor, first column)
        width = self.q1 + sum(factors[k].q for k in others)
        pos = np.empty((n, width), dtype=np.int64)
        for r in range(self.q1):
            pos[:, r] = fb.codes * self.q1 + r
        col = self.q1
        offset_k = self.g1 * self.q1
        self._first_col = {self.block: 0}
        for k in others:
            f = factors[k]
            self._first_col[k] = col
            for r in range(f.q):
                pos[:, col + r] = offset_k + f.codes * f.q + r
            col += f.q
            offset_k += f.n_levels * f.q
        self.pos = pos
        self.c1 = fb.codes.astype(np.int64)
        self.rptr, self.order = rows_by_level(self.c1, self.g1)  # the assembly's rows
        self._build_pattern()
        n_g = np.diff(self.kptr).astype(np.float64)
        self._schur_cost = self.q1 * (n_g * (n_g + 1) / 2 + n_g + 1.0)
        self._schur_bounds: np.ndarray | None = None  # the threads' chunks of block levels
        self._chunks: RowChunks | None = None  # the row kernels' (decided at first use)
        self._theta_slices = []
        start = 0
        for f in factors:
            self._theta_slices.append(slice(start, start + f.structure.n_theta))
            start += f.structure.n_theta
        self.n_theta = start
        self._bases = [np.asarray(f.structure.basis()) for f in factors]
        self._da = self._theta_derivative_rows()
        top = design.top_codes.astype(np.int64)
        self.top = top
        self.n_top = design.n_top
        self.pos_top = np.zeros(self.n_u, dtype=np.int64)
        self.pos_top[pos.ravel()] = np.repeat(top, width)
        self.u = np.zeros(self.n_u)
        self._u_index = level_indices(
            [(f.n_levels, f.q) for f in factors], self.block, self.g1 * self.q1, self.rest_perm
        )
        self.last_params: np.ndarray | None = None
        self._floor: float | None = None  # loglik_above's
        self._values: tuple[np.ndarray, np.ndarray] | None = None  # _row_values's last
        self._last_at: tuple | None = None  # (params, what _at returned there)
        self._last_gradient: tuple | None = None  # (params, what _gradient_terms returned)

    # -- set-up -----------------------------------------------------------------------
    def _build_pattern(self) -> None:
        """The block levels' rest positions and the rest's components
        (:func:`~mixedglm.engines.laplace_pattern.build_pattern`)."""
        pat = build_pattern(self.pos, self.c1, self.g1, self.q1, self.m)
        self.pos, self.rest_perm = pat.pos, pat.rest_perm
        self.kptr, self.kpos, self.loc = pat.kptr, pat.kpos, pat.loc
        self._set_layout(pat.rest_comp)

    def _set_layout(self, rest_comp: np.ndarray) -> None:
        """Flat storage of the component blocks of ``S`` (see ``laplace_kernels.cidx``)."""
        n_comp = int(rest_comp.max()) + 1 if rest_comp.size else 0
        size = np.bincount(rest_comp, minlength=n_comp).astype(np.int64)
        first = (np.cumsum(size) - size).astype(np.int64)
        base = (np.cumsum(size**2) - size**2).astype(np.int64)
        self.layout = (rest_comp, first, size, base)
        self.n_flat = int(np.sum(size**2))
        largest = int(size.max()) if size.size else 0
        if largest > MAX_REST:
            raise MixedGLMError(
                f"the Laplace engine factorises the random effects of the factors other than "
                f"'{self.design.factors[self.block].name}' as dense blocks; one block of "
                f"{largest:,} effects is more than it handles ({MAX_REST:,})"
            )

    def _theta_derivative_rows(self) -> np.ndarray:
        """``dA/dtheta_t`` on each row's coordinates, ``(T, N, J)`` (``A`` is linear in
        theta: ``a_k = Lambda_k' z_k``)."""
        n, width = self.pos.shape
        da = np.zeros((self.n_theta, n, width))
        for k, f in enumerate(self.design.factors):
            first = self._first_col[k]
            for t_local, e in enumerate(self._bases[k]):
                t = self._theta_slices[k].start + t_local
                da[t, :, first : first + f.q] = f.Z @ e
        return da

    # -- parameters (n_beta, n_aux, n_params, split, theta_of: FactorParameters) ------
    def _row_values(self, theta: np.ndarray) -> np.ndarray:
        """``a`` = the rows of ``A = Z Lambda`` on their coordinates ``(N, J)`` (read only:
        the last one again at the same theta, as at the covariance's fixed-effect points)."""
        if self._values is not None and np.array_equal(self._values[0], theta):
            return self._values[1]
        out = self.theta_rows(theta)
        self._values = (np.array(theta, dtype=float), out)
        return out

    def theta_rows(self, theta: np.ndarray) -> np.ndarray:
        """``sum_t theta_t dA/dtheta_t`` on the rows' coordinates, a new array (``A`` at
        ``theta``, or its change along a step of theta; not remembered)."""
        out = theta[0] * self._da[0] if theta.size else np.zeros(self._da.shape[1:])
        for t in range(1, theta.size):
            out += theta[t] * self._da[t]  # in place: tensordot's copies took 7 ms a call
        return out

    # -- PIRLS ------------------------------------------------------------------------
    def _factorise(self, a: np.ndarray, l1: np.ndarray, w: np.ndarray, u: np.ndarray) -> dict:
        q1, g1, m = self.q1, self.g1, self.m
        grad = np.empty(self.n_u)
        D = np.empty((g1, q1, q1))
        B = np.empty(self.kpos.shape[0] * q1)
        C = np.empty(self.n_flat)
        lay = self.layout
        args = (self.pos, a, self.loc, l1, w, u, q1, self.kptr, self.rptr, self.order)
        self._row_chunks().assemble(args, grad, (D, B, C), lay)
        Dinv = np.empty_like(D)
        F = np.empty_like(B)
        logdet_d = np.empty(g1)
        if not self._schur(D, B, Dinv, F, C, logdet_d):
            raise _NotFinite
        logdet_s = np.empty(m)
        if not laplace_dense.block_cholesky(C, lay, logdet_s):
            raise _NotFinite
        return {
            "grad": grad,
            "Dinv": Dinv,
            "F": F,
            "chol": C,
            "logdet_d": logdet_d,
            "logdet_s": logdet_s,
        }

    def _schur(
        self,
        D: np.ndarray,
        B: np.ndarray,
        Dinv: np.ndarray,
        F: np.ndarray,
        C: np.ndarray,
        logdet_d: np.ndarray,
    ) -> bool:
        """:func:`~mixedglm.engines.laplace_kernels.schur` over all block levels; on
        several threads when it is worth it (each thread's share of ``B' D^-1 B`` in its
        own copy of ``C``, added at the end: crossed designs, one large dense block)."""
        args = (self.kptr, self.kpos, self.q1)
        if self._schur_bounds is None:  # decided once (numba's thread count, numpy: 4 ms)
            threads = self.n_flat <= MAX_SHARED and use_threads(self._schur_cost)
            one = np.array([0, self.g1], dtype=np.int64)
            self._schur_bounds = cost_chunks(self._schur_cost, per_thread=1) if threads else one
        bounds = self._schur_bounds
        if bounds.size == 2:
            return bool(kern.schur(D, B, *args, Dinv, F, C, logdet_d, self.layout, 0, self.g1))
        ok = np.zeros(bounds.size - 1, dtype=bool)

        def run(lo: int, hi: int, slot: int, share: tuple[np.ndarray, ...]) -> None:
            ok[slot] = kern.schur(D, B, *args, Dinv, F, share[0], logdet_d, self.layout, lo, hi)

        run_summed(run, bounds, (C,))
        return bool(ok.all())

    def _row_chunks(self) -> RowChunks:
        if self._chunks is None:
            share = self.m + self.n_flat  # a further thread's copies in the assembly
            score = self.n_top * self.n_params
            self._chunks = RowChunks(self.rptr, share, self._schur_cost, score)
        return self._chunks

    def _solve(self, fac: dict, rhs: np.ndarray) -> np.ndarray:
        n1 = self.g1 * self.q1
        r1, r2 = rhs[:n1], rhs[n1:]
        if self.m:
            red = kern.reduce_rhs(r1, r2, fac["F"], self.kptr, self.kpos, self.q1)
            x2 = kern.block_solve(fac["chol"], self.layout, red)
        else:
            x2 = np.zeros(0)
        x1 = kern.back_substitute(r1, x2, fac["Dinv"], fac["F"], self.kptr, self.kpos, self.q1)
        return np.concatenate([x1, x2])

    def _rows(
        self, xb: np.ndarray, a: np.ndarray, u: np.ndarray, aux: np.ndarray, out: tuple
    ) -> float:
        """The penalised log-likelihood at ``u``; the rows' ``eta`` and kernel derivatives
        into the five arrays of ``out``."""
        chunks = self._row_chunks()
        val = chunks.row_terms(xb, self.pos, a, u, self.y, self.trials, aux, self.family.token, out)
        return val - 0.5 * float(u @ u)

    def _pirls(
        self, xb: np.ndarray, a: np.ndarray, aux: np.ndarray, guess: np.ndarray | None = None
    ) -> dict:
        """The joint mode of ``u`` and everything at it (rows' derivatives, factors), from
        ``guess`` or from ``self.u`` where the penalised log-likelihood is higher there.

        Each trial point of the step halving is evaluated into the spare set of row arrays,
        so that an accepted step's values serve the next iteration as they are."""
        n = self.y.shape[0]
        rows, spare = (tuple(np.empty(n) for _ in range(5)) for _ in range(2))
        u = self.u.copy()
        if not np.all(np.isfinite(u)):
            u[:] = 0.0
        obj = self._rows(xb, a, u, aux, rows)
        if guess is not None:
            val = self._rows(xb, a, guess, aux, spare)
            if np.isfinite(val) and not val < obj:  # not lower, or obj not finite
                u, obj = guess, val
                rows, spare = spare, rows
        if not np.isfinite(obj):
            raise _NotFinite
        for _ in range(PIRLS_MAXITER):
            fac = self._factorise(a, rows[2], -rows[3], u)
            delta = self._solve(fac, fac["grad"])
            decrement = float(fac["grad"] @ delta)
            tight = decrement < PIRLS_TOL * max(1.0, abs(obj)) or decrement < 1e-24
            if tight or (self.loose and decrement < LOOSE_DECREMENT):
                break
            if self._floor is not None and decrement < 1.0:  # loglik_above: Newton's model
                approx = self.loglik_from({"obj": obj + 0.5 * decrement, "fac": fac})
                margin = max(1.0, 1e-3 * abs(self._floor))
                if approx + margin < self._floor:
                    raise _Below(approx + margin)
            step = 1.0
            for _ in range(60):
                trial = u + step * delta
                val = self._rows(xb, a, trial, aux, spare)
                if np.isfinite(val) and val >= obj - 1e-12 * abs(obj):
                    break
                step *= 0.5
            else:
                break
            u, obj = trial, val
            rows, spare = spare, rows
        else:
            raise _NotFinite
        eta, l0, l1, l2, l3 = rows
        self.u = u
        return {
            "u": u,
            "a": a,
            "eta": eta,
            "l0": l0,
            "l1": l1,
            "w": -l2,
            "l3": l3,
            "fac": fac,
            "obj": obj,
        }

    def _at(self, params: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
        """PIRLS at ``params`` (retried from zero modes once): its state (empty when it
        fails), the rows' ``a``, ``aux`` and ``theta``. At the parameters of the last call
        the last result (the optimiser asks for the Hessian where it has just accepted a
        log-likelihood; the differenced Hessians return to their centre)."""
        last = self._last_at
        if last is not None and np.array_equal(last[0], params):
            if last[1][0]:
                self.u = last[1][0]["u"]
            return cast("tuple[dict, np.ndarray, np.ndarray, np.ndarray]", last[1])
        guess = None
        if last is not None and last[1][0] and self.u is last[1][0]["u"]:
            # PIRLS from the first-order prediction of the new modes or, where higher, from
            # the old modes' effects (theta changed) or the old modes
            guess = laplace_hessian.predicted_modes(self, last[1][0], last[0], params)
            same = self._same_effects(self.u, last[1][3], self.split(np.asarray(params))[1])
            self.u = self.u if same is None else same
        out = self._pirls_at(params, guess)
        self._last_at = (np.array(params, dtype=float), out)
        return out

    def _same_effects(
        self, u: np.ndarray, theta0: np.ndarray, theta: np.ndarray
    ) -> np.ndarray | None:
        """The ``u`` whose effects ``b = Lambda(theta) u`` are those of ``u`` at ``theta0``
        (``None`` where theta did not change or a ``Lambda`` is singular): where theta
        changes, and above all where a Newton step or the start grid flips or rescales
        it, the effects move much less than ``u`` (from the old ``u`` PIRLS took up to 25
        factorisations on the crossed benchmark's first trial step)."""
        if np.array_equal(theta0, theta):
            return None
        out = u.copy()
        for k, f in enumerate(self.design.factors):
            sl = self._theta_slices[k]
            old, new = f.structure.lam(theta0[sl]), f.structure.lam(theta[sl])
            if np.linalg.cond(new) > 1e8:
                return None
            idx = self._u_index[k]
            out[idx] = u[idx] @ np.linalg.solve(new, old).T
        return out

    def remembered(self) -> tuple | None:
        """The last PIRLS state (for :meth:`recall`): the start grid keeps its nodes'."""
        return self._last_at

    def recall(self, state: tuple | None) -> None:
        """Back to a state of :meth:`remembered` (its modes; an evaluation at its
        parameters then costs nothing): the EM step from the grid's best node, found
        before the next node, cost a factorisation more."""
        self._last_at = state
        if state is not None and state[1][0]:
            self.u = state[1][0]["u"]

    def forget(self) -> None:
        """Zero modes, no remembered results, the threads decided again: the next
        evaluation starts afresh."""
        self.u = np.zeros(self.n_u)
        self._last_at = self._last_gradient = None
        self._schur_bounds = self._chunks = None

    def _pirls_at(
        self, params: np.ndarray, guess: np.ndarray | None = None
    ) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
        beta, theta, aux = self.split(np.asarray(params, dtype=float))
        aux = np.ascontiguousarray(aux, dtype=float)
        with one_blas_thread():  # OpenBLAS's threads: 0.4 ms, or 8 under load (spinning)
            xb = self.X @ beta + self.offset
        a = self._row_values(theta)
        try:
            st = self._pirls(xb, a, aux, guess)
        except _NotFinite:
            self.u = np.zeros(self.n_u)
            try:
                st = self._pirls(xb, a, aux)
            except _NotFinite:
                return {}, a, aux, theta
        self.last_params = np.array(params, dtype=float)
        return st, a, aux, theta

    def _logdet_s_diag(self, st: dict) -> np.ndarray:
        return st["fac"]["logdet_s"]

    def _sinv(self, fac: dict) -> np.ndarray:
        """``S^-1`` on the component blocks (flat)."""
        return laplace_dense.block_inverse(fac["chol"], self.layout)

    def loglik(self, params: np.ndarray) -> float:
        """The Laplace log-likelihood (``-inf`` where the modes cannot be found)."""
        st, _, _, _ = self._at(params)
        return self.loglik_from(st) if st else -np.inf

    def loglik_above(self, params: np.ndarray, floor: float) -> tuple[float, bool]:
        """``(loglik(params), True)``, or ``(bound, False)`` as soon as PIRLS's Newton model
        (a decrement below 1) puts it below ``floor`` by more than 1e-3 relative: then it
        is below ``bound`` and the modes are not kept. The crossed start grid's node that
        ends its ray is only compared (on the benchmark 2 factorisations of 5, 1,458 below)."""
        self._floor = floor
        try:
            return self.loglik(params), True
        except _Below as below:
            return float(below.args[0]), False
        finally:
            self._floor = None

    # -- gradient ---------------------------------------------------------------------
    def _gradient_terms(self, params: np.ndarray) -> tuple[dict, np.ndarray]:
        """The PIRLS state at ``params`` and the per-top-cluster gradient (the last result
        at the same parameters: order-2 evaluations follow order-1 ones there)."""
        last = self._last_gradient
        if last is not None and np.array_equal(last[0], params):
            self._at(params)  # its modes
            return cast("tuple[dict, np.ndarray]", last[1])
        out = self._new_gradient_terms(params)
        self._last_gradient = (np.array(params, dtype=float), out)
        return out

    def _new_gradient_terms(self, params: np.ndarray) -> tuple[dict, np.ndarray]:
        st, a, aux, _ = self._at(params)
        if not st:
            return {}, np.full((self.n_top, self.n_params), np.nan)
        fac = st["fac"]
        sinv = self._sinv(fac)
        v = np.empty_like(a)
        chunks = self._row_chunks()
        P, H11 = chunks.selected_inverse(
            self.q1, self.kptr, self.kpos, fac["Dinv"], fac["F"], sinv, self.layout
        )
        lev = (self.c1, self.pos, a, self.loc, self.q1, self.kptr, P, H11, sinv, self.layout)
        h = chunks.row_leverages(lev, v)
        c = 0.5 * h * st["l3"]
        s = self._solve(fac, kern.scatter_rows(self.pos, a, c, self.n_u))
        As = kern.gather_rows(self.pos, a, s)
        out = np.zeros((self.n_top, self.n_params))
        rows = (st["eta"], self.y, self.trials, aux, self.family.token, st["l1"], st["w"])
        args = (self.X, self.pos, self._da, *rows, st["l3"], h, As, v, st["u"], s, self.top)
        chunks.gradient_rows(args, out)
        return st, out

    def gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        st, out = self._gradient_terms(params)
        if not st:
            return -np.inf, out.sum(axis=0)
        return self.loglik_from(st), out.sum(axis=0)

    def loglik_from(self, st: dict) -> float:
        """The log-likelihood from a PIRLS state (all constants included)."""
        fac = st["fac"]
        logdet = float(np.sum(fac["logdet_d"]) + np.sum(self._logdet_s_diag(st)))
        return float(st["obj"] + self.const - 0.5 * logdet)

    # -- Hessians (differences of the exact gradient: laplace_hessian) ------------------
    def fd_hessian(self, params: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        """Forward differences of the exact gradient in the directions ``columns``."""
        return laplace_hessian.fd_hessian(self, params, columns)

    def exact_hessian(self, params: np.ndarray) -> np.ndarray:
        """The symmetrised finite-difference Jacobian of the exact gradient (the covariance
        of the estimates comes from it)."""
        return laplace_hessian.covariance_hessian(self, params)

    def newton_hessian(self, params: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Log-likelihood, gradient and Hessian (that of :meth:`exact_hessian`) at once."""
        return laplace_hessian.newton_hessian(self, params)

    def _mode_derivative(self, st: dict, r: int) -> np.ndarray:
        return laplace_hessian.mode_derivative(self, st, r)

    def _restore(self, params: np.ndarray, centre: tuple) -> None:
        """Back to the PIRLS state at ``params`` after perturbed evaluations."""
        self._last_at = (np.array(params, dtype=float), centre)
        self._at(params)

    # -- the engine interface -----------------------------------------------------------
    def evaluate(self, params: np.ndarray, order: int) -> Evaluation:
        if order == 0:
            return Evaluation(self.loglik(params))
        if order == 1:
            return Evaluation(*self.gradient(params))
        if not self.exact:
            return Evaluation(*self.newton_hessian(params))
        ll, grad = self.gradient(params)  # first: often remembered from Newton's last step
        return Evaluation(ll, grad, self.exact_hessian(params))

    def __call__(self, params: np.ndarray, order: int) -> Evaluation:
        return self.evaluate(params, order)

    def contributions(self, params: np.ndarray) -> Contributions:
        """Per top-level cluster (nested models; one cluster for crossed ones)."""
        st, score = self._gradient_terms(params)
        if not st:
            return Contributions(np.full(self.n_top, -np.inf), score)
        g = self.n_top
        # with weights, bincount sums floats (numpy's stub types every result as intp)
        ll = cast(
            "npt.NDArray[np.float64]",
            np.bincount(self.top, weights=st["l0"] + self.const_rows, minlength=g),
        )
        ll -= 0.5 * np.bincount(self.pos_top, weights=st["u"] ** 2, minlength=g)
        fac = st["fac"]
        block_top = self.pos_top[np.arange(self.g1) * self.q1]
        ll -= 0.5 * np.bincount(block_top, weights=fac["logdet_d"], minlength=g)
        if self.m:
            rest_top = self.pos_top[self.g1 * self.q1 :]
            ll -= 0.5 * np.bincount(rest_top, weights=self._logdet_s_diag(st), minlength=g)
        return Contributions(ll, score)

    def posterior(self, params: np.ndarray) -> dict[str, Posterior]:
        """Conditional modes and conditional covariances (lme4's ``ranef`` and
        ``condVar``: each level's ``q x q`` diagonal block of ``H^-1``) per factor, on the
        spherical scale ``u``."""
        st, _, _, _ = self._at(params)
        if not st:
            raise MixedGLMError("the random effects' modes are not finite at these parameters")
        fac = st["fac"]
        u = st["u"]
        sinv = self._sinv(fac)
        n1 = self.g1 * self.q1
        rest_comp, first, size, base = self.layout
        out: dict[str, Posterior] = {}
        start = n1
        for k, f in enumerate(self.design.factors):
            if k == self.block:
                _, H11 = self._row_chunks().selected_inverse(
                    self.q1, self.kptr, self.kpos, fac["Dinv"], fac["F"], sinv, self.layout
                )
                mean = u[:n1].reshape(f.n_levels, f.q)
                out[f.name] = Posterior(mean.copy(), H11, "modes")
                continue
            old = start - n1 + np.arange(f.n_levels)[:, None] * f.q + np.arange(f.q)[None, :]
            new = self.rest_perm[old]
            comp = rest_comp[new[:, 0]]
            local = new - first[comp][:, None]
            flat = (
                base[comp][:, None, None]
                + local[:, :, None] * size[comp][:, None, None]
                + local[:, None, :]
            )
            out[f.name] = Posterior(u[n1 + new].copy(), sinv[flat], "modes")
            start += f.n_levels * f.q
        return out
