"""Likelihood-ratio test of two nested fits: Stata's ``lrtest``, R's ``anova``.

:func:`lrtest` takes two fitted models (result objects, their JSON documents or paths to
them), checks that they were fitted on the same sample and that one has fewer parameters,
and returns ``2 (ll_full - ll_restricted)`` on ``k_full - k_restricted`` degrees of freedom.

Boundary: when the restricted model sets variances of random effects to zero, the null
hypothesis is on the boundary of the parameter space. For one variance the statistic's null
distribution is the 50:50 mixture of chi2(0) and chi2(1) (``chibar2(01)``, Self & Liang
1987), reported exactly; for several components the plain chi2 tail is conservative, and
the result says so with Stata's note.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from mixedglm.errors import MixedGLMError

__all__ = ["LRTestResult", "lrtest", "model_info", "sample_signature"]

CONSERVATIVE_NOTE = (
    "Note: The reported degrees of freedom assumes the null hypothesis is not on the "
    "boundary of the parameter space.  If this is not true, then the reported test is "
    "conservative."
)
CHIBAR_NOTE = (
    "Note: One variance is zero under the null hypothesis (on the boundary of the parameter "
    "space): p is from the 50:50 mixture of chi2(0) and chi2(1)."
)


class NotNestedError(MixedGLMError):
    """The two models of an LR test are not nested or were fitted on different samples."""


@dataclass(frozen=True)
class ModelInfo:
    """What an LR test needs from one fit."""

    name: str
    kind: str
    loglik: float
    n_params: int
    nobs: int
    sample: str | None
    fixed: tuple[str, ...]
    variances: tuple[str, ...]  # variance components (group:var(x)): boundary under H0
    others: tuple[str, ...]  # covariances, ancillary parameters
    robust: bool = False


@dataclass(frozen=True)
class LRTestResult:
    """``stat``, ``df``, ``p``; ``kind`` is ``chi2`` or ``chibar2``; ``note`` is Stata's
    boundary note (empty when the null is interior)."""

    stat: float
    df: int
    p: float
    kind: str
    note: str
    restricted: str
    full: str

    def __str__(self) -> str:
        if self.kind == "chibar2":
            key1, key2 = "LR chibar2(01)", "Prob >= chibar2"
        else:
            key1, key2 = f"LR chi2({self.df})", "Prob > chi2"
        left1 = "Likelihood-ratio test"
        left2 = f"(Assumption: {self.restricted} nested in {self.full})"
        width = max(len(key1), len(key2))
        line1 = f"{left1:<54}{key1:<{width}} ={self.stat:>10.2f}"
        line2 = f"{left2:<54}{key2:<{width}} ={self.p:>10.4f}"
        lines = [line1, line2]
        if self.note:
            lines += ["", *_wrap(self.note, 78)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def to_dict(self) -> dict:
        return {
            "stat": self.stat,
            "df": self.df,
            "p": self.p,
            "kind": self.kind,
            "note": self.note,
        }


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def sample_signature(labels: Any, values: np.ndarray) -> str | None:
    """A short hash of the estimation sample: its row labels and outcome, order-free
    (``None`` for a result that does not know its rows)."""
    if labels is None:
        return None
    keys = np.array([str(v) for v in labels], dtype=object)
    order = np.argsort(keys, kind="stable")
    digest = hashlib.sha1()
    for key, value in zip(keys[order], np.asarray(values, dtype=float)[order], strict=True):
        digest.update(f"{key}\x1f{value:.17g}\x1e".encode())
    return digest.hexdigest()[:16]


def _comparable(a: str | None, b: str | None) -> bool:
    """Whether two samples' signatures are of the same kind: in memory (the rows' labels
    and outcomes) or on Dask (``dask:``, the rows' count and the sum of their hashes); a fit
    in memory and one on Dask are not compared."""
    return bool(a and b) and str(a).startswith("dask:") == str(b).startswith("dask:")


def _from_document(doc: dict, name: str) -> ModelInfo:
    try:
        fixed = tuple(str(r["term"]) for r in doc["coef"])
        random = doc.get("random", [])
        variances = tuple(
            f"{r['group']}:{r['name']}" for r in random if str(r["name"]).startswith("var(")
        )
        others = tuple(
            f"{r['group']}:{r['name']}" for r in random if not str(r["name"]).startswith("var(")
        ) + tuple(str(r["name"]) for r in doc.get("aux", []))
        n_params = int(doc.get("n_params", len(fixed) + len(variances) + len(others)))
        return ModelInfo(
            name=name,
            kind=str(doc.get("model", "")) + "/" + str(doc.get("family", "")),
            loglik=float(doc["loglik"]),
            n_params=n_params,
            nobs=int(doc["nobs"]),
            sample=doc.get("sample"),
            fixed=fixed,
            variances=variances,
            others=others,
            robust=(doc.get("vce") or {}).get("type", "oim") != "oim",
        )
    except (KeyError, TypeError, ValueError) as err:
        raise MixedGLMError(
            f"{name} is not a results document of mixedglm (missing or bad {err})"
        ) from err


def model_info(model: Any, name: str = "model") -> ModelInfo:
    """The :class:`ModelInfo` of a result object, a JSON document or a path to one."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError as err:
            raise MixedGLMError(f"results file '{path}' does not exist") from err
        except json.JSONDecodeError as err:
            raise MixedGLMError(f"'{path}' is not a JSON results document: {err}") from err
        return _from_document(doc, path.stem if name == "model" else name)
    if isinstance(model, dict):
        return _from_document(model, name)
    if hasattr(model, "to_dict") and hasattr(model, "loglik"):
        return _from_document(model.to_dict(), name)
    raise MixedGLMError(
        f"lrtest() takes fitted models (or their JSON documents), not {type(model).__name__}"
    )


def lrtest(restricted: Any, full: Any, names: tuple[str, str] = ("A", "B")) -> LRTestResult:
    """Likelihood-ratio test of ``restricted`` against ``full`` (Stata's ``lrtest``).

    Either order is accepted (the model with fewer parameters is the restricted one, as in
    Stata). Raises :class:`NotNestedError` when the models were fitted on different samples
    (different numbers of observations or rows), when they have the same number of
    parameters, when the restricted model's coefficients are not among the full model's, or
    when they are different kinds of model.
    """
    a, b = model_info(restricted, names[0]), model_info(full, names[1])
    for m in (a, b):
        if m.robust:
            raise NotNestedError(
                f"{m.name} was fitted with robust standard errors (a pseudolikelihood): an LR "
                "test is invalid with vce robust or cluster, as in Stata; use test() (Wald)"
            )
    if a.kind != b.kind:
        raise NotNestedError(
            f"{a.name} ({a.kind}) and {b.name} ({b.kind}) are different kinds of model: "
            "an LR test needs nested models of the same family"
        )
    if a.nobs != b.nobs:
        raise NotNestedError(
            f"observations differ: {a.name} used {a.nobs:,}, {b.name} {b.nobs:,}; an LR test "
            "needs both models fitted on the same sample"
        )
    if _comparable(a.sample, b.sample) and a.sample != b.sample:
        raise NotNestedError(
            f"{a.name} and {b.name} were fitted on different rows (or outcomes) of the data: "
            "an LR test needs both models fitted on the same sample"
        )
    if a.n_params == b.n_params:
        raise NotNestedError(
            f"{a.name} and {b.name} have the same number of parameters ({a.n_params}): the "
            "models are not nested, so an LR test does not apply"
        )
    if a.n_params > b.n_params:
        a, b = b, a
    missing = [t for t in a.fixed if t not in b.fixed]
    if missing:
        raise NotNestedError(
            f"{a.name} is not nested in {b.name}: its coefficients {', '.join(missing)} are not "
            f"in {b.name}"
        )
    df = b.n_params - a.n_params
    stat = 2.0 * (b.loglik - a.loglik)
    tol = 1e-6 * max(1.0, abs(b.loglik))
    if stat < -tol:
        raise NotNestedError(
            f"the restricted model {a.name} fits better than {b.name} (log likelihoods "
            f"{a.loglik:.8g} and {b.loglik:.8g}): the models are not nested"
        )
    stat = max(stat, 0.0)
    extra_var = [v for v in b.variances if v not in a.variances]
    extra_other = [v for v in b.others if v not in a.others]
    if len(extra_var) == 1 and df == 1 and not extra_other:
        p = 0.5 * float(stats.chi2.sf(stat, 1)) if stat > 0 else 1.0
        return LRTestResult(stat, 1, p, "chibar2", CHIBAR_NOTE, a.name, b.name)
    p = float(stats.chi2.sf(stat, df))
    note = CONSERVATIVE_NOTE if extra_var else ""
    if not math.isfinite(stat):
        raise MixedGLMError("the log likelihoods of the two models are not finite")
    return LRTestResult(stat, df, p, "chi2", note, a.name, b.name)
