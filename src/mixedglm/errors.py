"""The exceptions and warnings users see.

Every error raised for bad input names the variable, term or option at fault, in the user's
words. The command line turns a :class:`MixedGLMError` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class MixedGLMError(ValueError):
    """Base class of errors about the user's model or data (a ValueError, so generic
    handlers still catch it)."""


class DataError(MixedGLMError):
    """The data cannot be used as asked: unknown column, wrong outcome values, empty groups."""


class FormulaError(MixedGLMError):
    """The model formula does not parse or names something unsupported."""


class OptionError(MixedGLMError):
    """An option has an impossible value or conflicts with another option (named in the
    message, with the values allowed)."""


class FileError(DataError):
    """A data file or an output path cannot be used: missing, a directory, unreadable, a name
    too long, no rows, or written with another separator."""


class SubsetError(DataError):
    """The ``if``/``subset`` condition does not evaluate (the message shows the syntax)."""


class PredictionError(DataError):
    """New data cannot be predicted as asked: a factor level or a column the fit never saw,
    a cluster id of another type, a conditional prediction without the grouping column."""


class NotFiniteError(MixedGLMError, FloatingPointError):
    """The log-likelihood cannot be evaluated (overflow) at the starting values: data on
    extreme scales, or a model that does not suit the data. (Also a FloatingPointError, so
    that the fitting stages can try another start.)"""


class ConvergenceWarning(UserWarning):
    """The optimiser stopped before its convergence criterion was met."""


class ModelNote(UserWarning):
    """An adjustment made to the model, as Stata's 'note:' lines (omitted columns, a
    variance estimated at zero, groups dropped)."""


class QuadratureWarning(UserWarning):
    """The quadrature grid is large (``nagq**q`` points per cluster): slow, not wrong."""
