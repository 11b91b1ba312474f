"""Kolmogorov–Smirnov drift of a numeric signal (e.g. prediction confidence).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> det = KSDrift(alpha=0.01).fit(rng.normal(0, 1, 2000))
>>> det.calculate(rng.normal(0, 1, 500)).alarm, det.calculate(rng.normal(0.5, 1, 500)).alarm
(False, True)
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from abkit.drift._base import BatchDetector, Outcome, effective_n

__all__ = ["KSDrift", "ks_statistic"]

_EXACT_MAX = 10_000  # n·m up to which the exact two-sample distribution is used


def ks_statistic(reference_sorted: np.ndarray, current: np.ndarray) -> float:
    """sup |F_ref − F_cur| from a sorted reference (O((n + m) log m))."""
    cur = np.sort(np.asarray(current, dtype=float))
    grid = np.concatenate([reference_sorted, cur])
    f_ref = np.searchsorted(reference_sorted, grid, side="right") / reference_sorted.size
    f_cur = np.searchsorted(cur, grid, side="right") / cur.size
    return float(np.max(np.abs(f_ref - f_cur)))


class KSDrift(BatchDetector):
    """Two-sample KS test. Statistic and effect size: D = sup |F_ref − F_cur|. p-value: exact for n·m ≤ 10,000,
    else the asymptotic Kolmogorov distribution (conservative under ties); threshold: the D at which p = alpha."""

    signal = "ks"
    method = "two-sample Kolmogorov-Smirnov; D = sup|F_ref - F_cur|; p exact (small) or asymptotic"
    default_effect_threshold = 0.05

    def _fit(self, reference: np.ndarray) -> None:
        self.reference_sorted_ = np.sort(reference)

    def _test(self, current: np.ndarray) -> Outcome:
        n, m = self.reference_sorted_.size, current.size
        d = ks_statistic(self.reference_sorted_, current)
        en = np.sqrt(effective_n(n, m))
        if n * m <= _EXACT_MAX:
            p = float(stats.ks_2samp(self.reference_sorted_, current, method="exact").pvalue)
        else:
            p = float(stats.kstwobign.sf(en * d))
        return self._outcome(m, d, p, lambda a: float(stats.kstwobign.isf(a) / en))
