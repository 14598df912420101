"""mixedglm: generalized linear mixed models for clustered and panel data.

Random-intercept and random-slope GLMMs by adaptive Gauss-Hermite quadrature (Stata's
``melogit``/``xtlogit, re``, lme4's ``glmer``), with Stata-style output.
"""

# first: kernels are cached by source hash (see compile_cache); this import installs that
from mixedglm import compile_cache  # noqa: F401
from mixedglm.data import load_data
from mixedglm.errors import ConvergenceWarning, DataError, FormulaError, MixedGLMError
from mixedglm.families import get_family
from mixedglm.inference.lrtest import lrtest
from mixedglm.models.conditional import clogit, xtpoisson_fe
from mixedglm.models.glmm import glmm
from mixedglm.models.hybrid import hybrid
from mixedglm.plot import plot_compare
from mixedglm.report.compare import compare

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "FormulaError",
    "MixedGLMError",
    "__version__",
    "clogit",
    "compare",
    "get_family",
    "glmm",
    "hybrid",
    "load_data",
    "lrtest",
    "plot_compare",
    "xtpoisson_fe",
]
