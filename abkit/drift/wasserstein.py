"""Wasserstein (earth mover's) drift of a numeric signal, normed by the reference's standard deviation.

The false-alarm threshold is calibrated on the reference: under no drift √(nm/(n+m))·W₁ tends to
∫|B(F(x))| dx for a Brownian bridge B and the reference distribution F, which ``fit`` simulates on the
reference's quantile grid (seeded). p-values count the simulated draws with +1.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> det = WassersteinDrift(alpha=0.01, random_state=0).fit(rng.normal(0, 1, 3000))
>>> r = det.calculate(rng.normal(0.3, 1, 1000))
>>> r.alarm, round(r.statistic, 2)
(True, 0.27)
"""

from __future__ import annotations

import numpy as np

from abkit.drift._base import BatchDetector, Outcome, effective_n

__all__ = ["WassersteinDrift", "wasserstein_1d"]


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """W₁ between two samples: the area between their empirical CDFs."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([a, b])
    grid.sort()
    fa = np.searchsorted(a, grid[:-1], side="right") / a.size
    fb = np.searchsorted(b, grid[:-1], side="right") / b.size
    return float(np.sum(np.abs(fa - fb) * np.diff(grid)))


class WassersteinDrift(BatchDetector):
    """W₁(ref, cur) / max(std(ref), 0.001) (Evidently's normalisation); the null is simulated at fit."""

    signal = "wasserstein"
    method = "Wasserstein-1 / max(sd_ref, 0.001); null simulated from the reference (Brownian bridge), p with +1"
    default_effect_threshold = 0.05

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        min_size: int = 30,
        effect_threshold: float | None = None,
        n_null: int = 20_000,
        grid: int = 200,
        random_state: int | None = 0,
    ) -> None:
        super().__init__(alpha=alpha, min_size=min_size, effect_threshold=effect_threshold)
        self.n_null, self.grid, self.random_state = int(n_null), int(grid), random_state

    def _fit(self, reference: np.ndarray) -> None:
        rng = np.random.default_rng(self.random_state)
        self.reference_ = np.sort(reference)
        self.scale_ = max(float(np.std(reference)), 1e-3)
        u = np.linspace(0.0, 1.0, self.grid + 1)
        x = np.quantile(self.reference_, u)
        dx, du = np.diff(x), np.diff(u)
        null = np.empty(self.n_null)
        for start in range(0, self.n_null, 2000):  # chunks keep the memory small
            k = min(2000, self.n_null - start)
            walk = np.cumsum(rng.normal(0.0, np.sqrt(du), size=(k, du.size)), axis=1)
            bridge = walk - u[1:] * walk[:, -1:]
            left = np.concatenate([np.zeros((k, 1)), bridge[:, :-1]], axis=1)  # B at each interval's left end
            null[start : start + k] = np.abs(left) @ dx
        self.null_ = np.sort(null)

    def _test(self, current: np.ndarray) -> Outcome:
        en = np.sqrt(effective_n(self.reference_.size, current.size))
        w = wasserstein_1d(self.reference_, current) / self.scale_
        scaled = en * w * self.scale_
        p = (1 + self.null_.size - np.searchsorted(self.null_, scaled, side="left")) / (self.null_.size + 1)
        return self._outcome(current.size, w, p, lambda a: float(np.quantile(self.null_, 1 - a)) / en / self.scale_)
