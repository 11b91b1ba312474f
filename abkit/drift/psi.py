"""Population stability index of a numeric signal, on equal-share bins of the reference.

Under no drift (nm/(n+m))·PSI is approximately χ² with (bins − 1) degrees of freedom (PSI is the
symmetrised Kullback–Leibler divergence, ≈ Σ (c − r)²/r for small changes); that gives the p-value and
the threshold.

>>> import numpy as np
>>> rng = np.random.default_rng(2)
>>> det = PSIDrift(alpha=0.01).fit(rng.normal(0, 1, 5000))
>>> det.calculate(rng.normal(0, 1, 1000)).alarm, det.calculate(rng.normal(0, 1.5, 1000)).alarm
(False, True)
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from abkit.drift._base import BatchDetector, Outcome, effective_n
from abkit.drift._distributions import bin_edges, binned_counts, psi, shares

__all__ = ["PSIDrift"]


class PSIDrift(BatchDetector):
    """PSI on ``bins`` fit on the reference (default 10 equal-share bins); empty bins filled as Evidently does."""

    signal = "psi"
    method = "population stability index on reference-quantile bins; p from the chi-square approximation"
    default_effect_threshold = 0.02

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        min_size: int = 30,
        effect_threshold: float | None = None,
        bins: str | int = "quantile",
    ) -> None:
        super().__init__(alpha=alpha, min_size=min_size, effect_threshold=effect_threshold)
        self.bins = bins

    def _reference_problem(self, reference: np.ndarray) -> str | None:
        return "all values are equal; PSI has no bins to compare" if np.ptp(reference) == 0 else None

    def _fit(self, reference: np.ndarray) -> None:
        self.edges_ = bin_edges(reference, self.bins)
        self.reference_shares_ = shares(binned_counts(reference, self.edges_))
        self.n_ref_ = reference.size

    def _test(self, current: np.ndarray) -> Outcome:
        value = psi(self.reference_shares_, shares(binned_counts(current, self.edges_)))
        en, df = effective_n(self.n_ref_, current.size), self.edges_.size
        return self._outcome(
            current.size, value, float(stats.chi2.sf(en * value, df)), lambda a: float(stats.chi2.isf(a, df)) / en
        )
