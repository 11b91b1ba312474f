"""Numbers for people: percentages, milliseconds, thousands separators, p-values and rounded intervals.

Every function returns text that never holds scientific notation, ``nan`` or a Python repr; a missing
value becomes ``"pending"`` (optionally with the reason in brackets).

>>> percent(0.52), percent(0.0421, signed=True), count(10912.0), ms(3.19185)
('52.0 %', '+4.2 %', '10,912', '3.19 ms')
>>> p_value(7.3e-144), p_value(0.01117), p_value(0.8675)
('< 0.001', '0.011', '0.87')
>>> interval(0.006755, 0.05524, "rate")
'0.7 % to 5.5 %'
>>> number(None, reason="no labels yet")
'pending (no labels yet)'
"""

from __future__ import annotations

import math
from typing import Any

PENDING = "pending"

#: Units a metric can be shown in: ``rate`` (a share, shown as a percentage), ``ms``, ``count``, ``number``.
UNITS = ("rate", "ms", "count", "number")


def missing(value: Any) -> bool:
    """True for None and non-finite floats (what a report must call pending)."""
    if value is None:
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def pending(reason: str | None = None) -> str:
    """The word shown instead of a missing number, with its reason."""
    return f"{PENDING} ({reason})" if reason else PENDING


def _decimals(value: float, sig: int) -> int:
    """Decimal places that keep ``sig`` significant digits of ``value`` (never negative)."""
    if value == 0 or not math.isfinite(value):
        return 0
    return max(0, sig - 1 - math.floor(math.log10(abs(value))))


def _fixed(value: float, decimals: int, signed: bool = False) -> str:
    text = f"{value:{'+' if signed else ''},.{decimals}f}"
    if text.lstrip("+-").strip("0.,") == "":  # "-0.0" and "+0.0" read as plain zero
        text = text.lstrip("+-")
    return text.replace("-", "−") if text.startswith("-") else text


def number(value: Any, sig: int = 3, *, signed: bool = False, reason: str | None = None) -> str:
    """A plain number with ``sig`` significant digits (at most 6 decimals), thousands separators."""
    if missing(value):
        return pending(reason)
    x = float(value)
    if abs(x) >= 10**sig:
        return _fixed(x, 0, signed)
    return _fixed(x, min(_decimals(x, sig), 6), signed)


def count(value: Any, *, reason: str | None = None) -> str:
    """A whole number with thousands separators: ``10,912``."""
    if missing(value):
        return pending(reason)
    return f"{int(round(float(value))):,}"


def percent(value: Any, decimals: int = 1, *, signed: bool = False, reason: str | None = None) -> str:
    """A share as a percentage: ``0.52`` → ``52.0 %``."""
    if missing(value):
        return pending(reason)
    return _fixed(100 * float(value), decimals, signed) + " %"


def ms(value: Any, sig: int = 3, *, signed: bool = False, reason: str | None = None) -> str:
    """Milliseconds with ``sig`` significant digits: ``3.19 ms``, ``1,204 ms``."""
    if missing(value):
        return pending(reason)
    return number(value, sig, signed=signed) + " ms"


def p_value(value: Any, *, reason: str | None = None) -> str:
    """A p-value: ``< 0.001`` below a thousandth, else two significant digits (at most three decimals)."""
    if missing(value):
        return pending(reason)
    p = float(value)
    if p < 0.001:
        return "< 0.001"
    if p > 0.999:
        return "> 0.999"
    return _fixed(p, min(_decimals(p, 2), 3))


def chance(value: Any, *, reason: str | None = None) -> str:
    """A probability as a whole percentage, never claiming certainty: ``> 99 %``, ``< 1 %``, ``91 %``."""
    if missing(value):
        return pending(reason)
    x = 100 * float(value)
    if x > 99:
        return "> 99 %"
    if x < 1:
        return "< 1 %"
    return f"{x:.0f} %"


def value(
    x: Any, unit: str = "number", *, signed: bool = False, decimals: int | None = None, reason: str | None = None
) -> str:
    """``x`` in ``unit`` (one of :data:`UNITS`); ``decimals`` fixes the rounding (rates: of the percentage)."""
    if unit not in UNITS:
        raise ValueError(f"unit={unit!r} is not one of {UNITS}")
    if missing(x):
        return pending(reason)
    if unit == "rate":
        return percent(x, 1 if decimals is None else decimals, signed=signed)
    if unit == "count":
        return ("+" if signed and float(x) > 0 else "") + count(x)
    text = number(x, signed=signed) if decimals is None else _fixed(float(x), decimals, signed)
    return text + (" ms" if unit == "ms" else "")


def interval_decimals(low: float, high: float, unit: str = "number") -> int:
    """Decimals that show an interval's width with two significant digits (rates: of the percentage)."""
    scale = 100.0 if unit == "rate" else 1.0
    width = abs(high - low) * scale
    if width == 0:
        return 1 if unit == "rate" else 2
    return min(max(0, 1 - math.floor(math.log10(width))), 6)


def interval(low: Any, high: Any, unit: str = "number", *, signed: bool = False, reason: str | None = None) -> str:
    """An interval rounded to its meaningful digits: ``0.7 % to 5.5 %``, ``2.0 ms to 3.1 ms``."""
    if missing(low) or missing(high):
        return pending(reason)
    d = interval_decimals(float(low), float(high), unit)
    return f"{value(low, unit, signed=signed, decimals=d)} to {value(high, unit, signed=signed, decimals=d)}"


def estimate_with_interval(
    est: Any,
    low: Any,
    high: Any,
    unit: str = "number",
    *,
    signed: bool = False,
    decimals: int | None = None,
    reason: str | None = None,
) -> str:
    """``52.0 % (43.2 % to 60.8 %)``: the estimate rounded like its interval (or to ``decimals``)."""
    if missing(est):
        return pending(reason)
    if missing(low) or missing(high):
        return value(est, unit, signed=signed, decimals=decimals)
    d = interval_decimals(float(low), float(high), unit) if decimals is None else decimals
    lo, hi = (value(x, unit, signed=signed, decimals=d) for x in (low, high))
    return f"{value(est, unit, signed=signed, decimals=d)} ({lo} to {hi})"
