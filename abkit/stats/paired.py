"""Paired comparisons for shadow traffic (both models score the same request): exact McNemar on
correctness and a clustered paired-difference test for confidence and latency.

>>> round(mcnemar_exact(10, 3).p_value, 4)
0.0923
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats as sps

from abkit.errors import AbkitError
from abkit.stats._common import critical, interval, p_value
from abkit.stats.aggregates import ArmStats
from abkit.stats.config import check_alpha, check_alternative


class McNemarResult(NamedTuple):
    """Exact McNemar test on discordant pairs."""

    p_value: float  # two-sided exact binomial p-value
    statistic: float  # min(b, c)
    n_discordant: int  # b + c
    estimate: float  # (c − b)/n_pairs when n_pairs is given, else (c − b)/(b + c)


def mcnemar_exact(b: int, c: int, n_pairs: int | None = None) -> McNemarResult:
    """Exact McNemar: ``b`` = control right & challenger wrong, ``c`` = control wrong & challenger right."""
    for name, v in (("b", b), ("c", c)):
        if v < 0 or int(v) != v:
            raise AbkitError(f"{name}={v!r} must be a non-negative integer count of discordant pairs")
    n = int(b + c)
    p = 1.0 if n == 0 else float(min(1.0, 2.0 * sps.binom.cdf(min(b, c), n, 0.5)))
    den = n_pairs if n_pairs else max(n, 1)
    return McNemarResult(p, float(min(b, c)), n, float((c - b) / den))


class PairedResult(NamedTuple):
    """Mean paired difference (challenger − control) per prediction, clustered by user."""

    estimate: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    se: np.ndarray
    p_value: np.ndarray
    df: np.ndarray
    method: str


def paired_difference(diffs: ArmStats, *, alpha: float | None = None, alternative: str | None = None) -> PairedResult:
    """Test the mean paired difference; ``diffs`` holds per-user sums of differences (m) and pair counts (d),
    so the standard error respects user clustering (a plain paired t when every user has one pair)."""
    a, alt = check_alpha(alpha), check_alternative(alternative)
    mo = diffs.moments()
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(mo.var / mo.n)
        df = mo.n - 1.0
        stat = mo.mean / se
    low, high = interval(mo.mean, critical(a, df, alt) * se, alt)
    return PairedResult(mo.mean, low, high, se, p_value(stat, df, alt), df, "paired t (clustered by user)")
