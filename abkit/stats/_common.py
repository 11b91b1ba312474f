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
