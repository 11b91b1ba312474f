"""Clustered intervals for quantiles (latency p50/p95/p99) when users send several requests.

Deng, Knoblich & Lu (2018), "Applying the delta method in metric analytics": the sample quantile q̂_p
satisfies F̂(q̂_p) ≈ p, and F̂(q) = Σ 1{x ≤ q}/Σ 1 is a ratio metric over users, so its clustered variance
σ² comes from the delta method. The interval of q_p is [X_(rank at p − zσ), X_(rank at p + zσ)]: the
engine evaluates F̂'s sufficient statistics at q̂_p and then the quantiles at the two returned
probabilities, so no rows leave the engine.

>>> from abkit.stats.aggregates import ArmStats
>>> ind = ArmStats(n=1000, m_sum=4750.0, m_ss=27000.0, d_sum=5000.0, d_ss=30000.0, md_sum=28400.0)
>>> lo, hi, se = quantile_rank_interval(0.95, ind)
>>> round(float(lo), 4), round(float(hi), 4)
(0.9458, 0.9542)
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from abkit.stats._common import p_value
from abkit.stats.aggregates import ArmStats
from abkit.stats.config import check_alpha
from abkit.stats.frequentist import TestResult


def quantile_rank_interval(
    p: object, indicator: ArmStats, *, alpha: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities (p − zσ, p + zσ), clipped to [0, 1], whose quantiles bound q_p, and σ.

    ``indicator`` holds per-user sums of 1{x ≤ q̂_p} (m) and of request counts (d).
    """
    a = check_alpha(alpha)
    z = float(sps.norm.isf(a / 2.0))
    mo = indicator.moments()
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.sqrt(mo.var / mo.n)
    pp = np.asarray(p, dtype=np.float64)
    return np.clip(pp - z * sigma, 0.0, 1.0), np.clip(pp + z * sigma, 0.0, 1.0), sigma


def quantile_difference(
    q_control: object,
    low_control: object,
    high_control: object,
    q_treatment: object,
    low_treatment: object,
    high_treatment: object,
    *,
    alpha: float | None = None,
    relative: bool = False,
) -> TestResult:
    """Difference of two arms' quantiles; each arm's standard error is its interval width / (2z)
    (the interval from :func:`quantile_rank_interval` at the same ``alpha``), normal approximation."""
    a = check_alpha(alpha)
    z = float(sps.norm.isf(a / 2.0))
    qc, lc, hc, qt, lt, ht = (
        np.asarray(v, dtype=np.float64)
        for v in (q_control, low_control, high_control, q_treatment, low_treatment, high_treatment)
    )
    se_c, se_t = (hc - lc) / (2 * z), (ht - lt) / (2 * z)
    with np.errstate(divide="ignore", invalid="ignore"):
        if relative:
            est = (qt - qc) / np.abs(qc)
            se = np.sqrt(se_t**2 / qc**2 + se_c**2 * qt**2 / qc**4)
        else:
            est = qt - qc
            se = np.sqrt(se_c**2 + se_t**2)
        stat = est / se
    inf = np.full(np.shape(est), np.inf)
    method = "quantile difference, clustered delta-method ranks (Deng et al. 2018)"
    return TestResult(
        qc,
        qt,
        est,
        est - z * se,
        est + z * se,
        se,
        stat,
        p_value(stat, None, "two-sided"),
        inf,
        method + (", relative" if relative else ""),
    )
