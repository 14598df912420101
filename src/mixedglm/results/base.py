"""What every result class shares: z statistics, p-values and intervals of its coefficients."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from mixedglm.inference import normal_ci, z_pvalues
from mixedglm.options import resolve_level


class CoefficientResults:
    """Mixin for result classes that define ``params`` (a Series), ``cov_params`` (a
    DataFrame), ``level`` and ``opt`` (an :class:`~mixedglm.optim.OptSummary`)."""

    params: pd.Series
    cov_params: pd.DataFrame
    level: float

    @property
    def converged(self) -> bool:
        return self.opt.converged  # type: ignore[attr-defined]

    @property
    def iterations(self) -> int:
        return self.opt.iterations  # type: ignore[attr-defined]

    @cached_property
    def bse(self) -> pd.Series:
        """Standard errors of the coefficients."""
        return pd.Series(np.sqrt(np.diag(self.cov_params.to_numpy())), index=self.params.index)

    @cached_property
    def zvalues(self) -> pd.Series:
        return self.params / self.bse

    @property
    def tvalues(self) -> pd.Series:
        """Alias of :attr:`zvalues` (statsmodels' name)."""
        return self.zvalues

    @cached_property
    def pvalues(self) -> pd.Series:
        return pd.Series(z_pvalues(self.zvalues.to_numpy()), index=self.params.index)

    def conf_int(self, level: float | None = None) -> pd.DataFrame:
        """Normal-theory confidence intervals of the coefficients."""
        lo, hi = normal_ci(
            self.params.to_numpy(), self.bse.to_numpy(), resolve_level(level, self.level)
        )
        return pd.DataFrame({"lower": lo, "upper": hi}, index=self.params.index)
