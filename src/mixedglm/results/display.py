"""How results show themselves: ``print(res)`` and ``repr`` in a REPL give the estimation
table (not the dataclass fields), ``_repr_html_`` an HTML table in Jupyter.

Result classes mix :class:`DisplayMixin` in (and declare their dataclass with
``repr=False`` so that the generated ``__repr__`` does not hide it); each provides
``_text()`` and ``_html()``.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any


class DisplayMixin:
    """``__str__``/``__repr__`` from ``_text()``, ``_repr_html_`` from ``_html()``.

    The default ``_text()``/``_html()`` render ``self.summary()`` (a
    :class:`~mixedglm.results.glmm.Summary`)."""

    summary: Callable[..., Any]

    def _text(self) -> str:
        return str(self.summary())

    def _html(self) -> str:
        summary = self.summary()
        extras = "".join(
            f"<pre>{html.escape(text)}</pre>" for text in getattr(summary, "extras", ())
        )
        return summary.as_html() + extras

    def __str__(self) -> str:
        return self._text()

    def __repr__(self) -> str:
        return self._text()

    def _repr_html_(self) -> str:
        """The table as HTML (Jupyter calls this to display the object)."""
        return self._html()
