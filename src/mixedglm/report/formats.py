"""Number formats as Stata displays them (``%9.0g``, ``%10.0fc``, ``%10.2f`` ...)."""

from __future__ import annotations

import math


def stata_g(value: float | None, width: int = 9) -> str:
    """Stata's ``%9.0g``: as many digits as fit in ``width - 1`` characters (one is kept
    for the sign), trailing zeros and the leading zero of fractions dropped; exponential
    notation where fixed notation would not fit or would show too few digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "."
    if value == 0:
        return "0"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    room = width - 1
    mag = abs(value)
    int_digits = max(1, math.floor(math.log10(mag)) + 1) if mag >= 1 else 0
    if int_digits > room or mag < 1e-5:
        mant_digits = max(room - 6, 1)  # d.dde+XX
        text = f"{mag:.{mant_digits}e}"
        mantissa, exp = text.split("e")
        text = f"{mantissa}e{exp[0]}{int(exp[1:]):02d}"
    else:
        decimals = room - int_digits - 1 if int_digits else room - 1
        decimals = max(decimals, 0)
        text = f"{mag:.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        if text.startswith("0."):
            text = text[1:]
        if len(text) > room:  # rounding carried into a new digit
            text = text[:room].rstrip(".")
    return ("-" if value < 0 else "") + text


def fixed(value: float | None, decimals: int) -> str:
    """``%w.df`` without the width."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "."
    return f"{value:.{decimals}f}"


def comma_int(value: int) -> str:
    """``%10.0fc``: an integer with thousands separators."""
    return f"{int(value):,}"


def stata_p(value: float | None) -> str:
    """P>|z| column: ``%5.3f``."""
    return fixed(value, 3)


def stata_stat(value: float | None) -> str:
    """Test statistics in footers (LR chi2): ``%8.2f``, exponential when large."""
    if value is None or math.isnan(value):
        return "."
    if abs(value) >= 1e7:
        return f"{value:.1e}".replace("e+0", "e+")
    return f"{value:.2f}"
