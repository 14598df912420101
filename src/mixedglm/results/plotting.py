"""Plot methods of the result classes; the drawing is in :mod:`mixedglm.plot` (matplotlib,
imported only when a plot is made)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mixedglm.errors import MixedGLMError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class PlotMixin:
    """``plot_coefficients()`` for every result; ``plot_random_effects()`` for mixed models."""

    def plot_coefficients(
        self, eform: bool = False, level: float | None = None, drop: Sequence[str] = ("_cons",)
    ) -> Figure:
        """The coefficients with confidence intervals (see
        :func:`mixedglm.plot.plot_coefficients`)."""
        from mixedglm.plot import plot_coefficients

        return plot_coefficients(self, eform=eform, level=level, drop=drop)

    def plot_random_effects(
        self, kind: str = "means", level: float = 95.0, sort: bool = True
    ) -> Figure:
        """Caterpillar plot of the predicted random effects (see
        :func:`mixedglm.plot.plot_random_effects`)."""
        from mixedglm.plot import plot_random_effects

        return plot_random_effects(self, kind=kind, level=level, sort=sort)

    def plot_margins(self, title: str | None = None, **margins: Any) -> Figure:
        """``margins(**margins)`` (average marginal effects with ``dydx=``, else predictive
        margins) plotted with their intervals (see :func:`mixedglm.plot.plot_margins`)."""
        from mixedglm.plot import plot_margins

        compute = getattr(self, "margins", None)
        if compute is None:
            raise MixedGLMError("margins() and their plot are for mixed models (glmm)")
        return plot_margins(compute(**margins), title)
