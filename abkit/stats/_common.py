"""Small shared helpers of abkit.stats: distributions, p-values and intervals by alternative."""

from __future__ import annotations

import numpy as np
from scipy import stats as sps


def quantile(q: float | np.ndarray, df: np.ndarray | None) -> np.ndarray:
    """Quantile of N(0, 1) (``df`` None or inf) or Student t with ``df`` degrees of freedom."""
    if df is None:
        return np.asarray(sps.norm.ppf(q))
    df = np.asarray(df, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(df), sps.norm.ppf(q), sps.t.ppf(q, np.where(np.isinf(df), 1.0, df)))


def sf(x: np.ndarray, df: np.ndarray | None) -> np.ndarray:
    """Survival function of N(0, 1) or Student t."""
    if df is None:
        return np.asarray(sps.norm.sf(x))
    df = np.asarray(df, dtype=np.float64)
    return np.where(np.isinf(df), sps.norm.sf(x), sps.t.sf(x, np.where(np.isinf(df), 1.0, df)))


def p_value(stat: np.ndarray, df: np.ndarray | None, alternative: str) -> np.ndarray:
    """p-value of a standardized statistic (treatment − control direction)."""
    if alternative == "greater":
        return sf(stat, df)
    if alternative == "less":
        return sf(-stat, df)
    return np.minimum(1.0, 2.0 * sf(np.abs(stat), df))


def interval(est: np.ndarray, half: np.ndarray, alternative: str) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) from an estimate and the one-sided half width for the alternative."""
    low = np.where(alternative == "less", -np.inf, est - half)
    high = np.where(alternative == "greater", np.inf, est + half)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def critical(alpha: float, df: np.ndarray | None, alternative: str) -> np.ndarray:
    """Critical value: z/t quantile at 1 − α/2 (two-sided) or 1 − α (one-sided)."""
    return quantile(1.0 - (alpha / 2.0 if alternative == "two-sided" else alpha), df)


INSUFFICIENT = "insufficient data"  # the one name every method gives a comparison without estimable variance


def estimable(var_c: np.ndarray, n_c: np.ndarray, var_t: np.ndarray, n_t: np.ndarray) -> np.ndarray:
    """True where both arms have at least two units and a finite, positive per-unit variance.

    Elsewhere (one user, an empty arm, zero or undefined variance) every method reports the same
    "insufficient data" result: estimate kept, interval, p-value and chance to win NaN.
    """
    with np.errstate(invalid="ignore"):
        ok = [(np.asarray(n) >= 2) & np.isfinite(v) & (np.asarray(v) > 0) for v, n in ((var_c, n_c), (var_t, n_t))]
    return np.asarray(ok[0] & ok[1] & np.isfinite(n_c) & np.isfinite(n_t))


def usable_se(se: object) -> np.ndarray:
    """True where a standard error is finite and positive (else the comparison has insufficient data)."""
    s = np.asarray(se, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(s) & (s > 0)
