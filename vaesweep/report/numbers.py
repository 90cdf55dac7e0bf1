"""How the report prints numbers: the reading, the tables and the figures use these, so a value
quoted in a sentence is character for character the value in the tables."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def _number(x: Any) -> float | str:
    """``x`` as a float, or the text to print instead: "n/a" for NaN, ``str(x)`` for a value
    that is not a number."""
    if x is None or x is pd.NA:  # a missing count in a nullable integer column
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "n/a" if math.isnan(v) else v


def fmt(x: Any, digits: int = 3) -> str:
    """``digits`` significant figures; thousands separators instead of an exponent for large
    numbers; "n/a" for NaN or a value that is not a number."""
    v = _number(x)
    if isinstance(v, str):
        return v
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    if abs(v) >= 10**digits:
        return f"{v:,.0f}"
    text = f"{v:.{digits}g}"
    if "e" in text:
        mant, exp = text.split("e")
        return f"{mant}e{int(exp)}"
    return text


def fmt_pct(x: float) -> str:
    """A fraction as a whole percentage ("96%")."""
    return "n/a" if not math.isfinite(x) else f"{100 * x:.0f}%"


def fmt_int(x: Any) -> str:
    """A count (possibly a mean over seeds): whole numbers without a decimal point."""
    v = _number(x)
    if isinstance(v, str):
        return v
    return f"{v:.0f}" if v == round(v) else f"{v:.1f}"
