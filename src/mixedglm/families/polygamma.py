"""Special functions for the compiled kernels: digamma, trigamma, tetragamma and the
differences ``f(y + r) - f(r)`` the negative binomial log-likelihood needs.

numba has ``math.lgamma`` but no polygamma functions. Each is computed by the recurrence up
to ``x >= 10`` and the asymptotic (Bernoulli-number) series there, accurate to about 1e-15
relative. For an integer count ``y < 64`` the differences are the exact finite sums
``sum_{k<y} log(r + k)``, ``1/(r + k)``... which, unlike ``lgamma(y + r) - lgamma(r)``, do
not cancel when ``r`` is large (the Poisson limit of the negative binomial).
"""

from __future__ import annotations

import math

from mixedglm.jit import kernel

_SMALL_COUNT = 64.0


@kernel
def digamma(x: float) -> float:
    """psi(x) for x > 0."""
    acc = 0.0
    while x < 10.0:
        acc -= 1.0 / x
        x += 1.0
    inv2 = 1.0 / (x * x)
    series = inv2 * (
        1.0 / 12.0
        - inv2
        * (
            1.0 / 120.0
            - inv2
            * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0 - inv2 * 691.0 / 32760.0)))
        )
    )
    return acc + math.log(x) - 0.5 / x - series


@kernel
def trigamma(x: float) -> float:
    """psi'(x) for x > 0."""
    acc = 0.0
    while x < 10.0:
        acc += 1.0 / (x * x)
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv2 * (
        1.0 / 6.0
        - inv2
        * (
            1.0 / 30.0
            - inv2
            * (1.0 / 42.0 - inv2 * (1.0 / 30.0 - inv2 * (5.0 / 66.0 - inv2 * 691.0 / 2730.0)))
        )
    )
    return acc + inv + 0.5 * inv2 + inv * series


@kernel
def tetragamma(x: float) -> float:
    """psi''(x) for x > 0."""
    acc = 0.0
    while x < 10.0:
        acc -= 2.0 / (x * x * x)
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv2 * (
        0.5
        - inv2
        * (
            1.0 / 6.0
            - inv2 * (1.0 / 6.0 - inv2 * (3.0 / 10.0 - inv2 * (5.0 / 6.0 - inv2 * 691.0 / 210.0)))
        )
    )
    return acc - inv2 - inv2 * inv - inv2 * series


@kernel
def count_differences(y: float, r: float) -> tuple[float, float, float, float]:
    """``lgamma(y + r) - lgamma(r)`` and the same differences of psi, psi' and psi''
    for a count ``y >= 0`` and ``r > 0``."""
    if y < _SMALL_COUNT:
        g0 = 0.0
        g1 = 0.0
        g2 = 0.0
        g3 = 0.0
        for k in range(int(y)):
            x = r + k
            inv = 1.0 / x
            g0 += math.log(x)
            g1 += inv
            g2 -= inv * inv
            g3 += 2.0 * inv * inv * inv
        return g0, g1, g2, g3
    z = y + r
    return (
        math.lgamma(z) - math.lgamma(r),
        digamma(z) - digamma(r),
        trigamma(z) - trigamma(r),
        tetragamma(z) - tetragamma(r),
    )
