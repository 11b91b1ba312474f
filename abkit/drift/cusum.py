"""Streaming change detector for accuracy over time: a Bernoulli CUSUM whose threshold is set from the
expected run length without change (ERT).

Each labelled prediction adds the log-likelihood ratio of "accuracy p1 = p0 − shift" against "accuracy
p0" (learnt from the reference) to a statistic kept at or above 0 (Page's CUSUM); a change is detected
when it exceeds ``h``. ``h`` is chosen so that the mean run length under no change equals ``ert``: Page's
renewal identity ARL = E[N] / P(cross), where N is one excursion from 0 until the statistic falls to 0 or
reaches h; E[N] is simulated under p0 and P(cross) under p1 by importance sampling (the likelihood ratio
of an excursion is exp(−S_N)), so large ERTs cost no more than small ones. After a detection the next
``update`` starts afresh.

>>> import random
>>> rnd = random.Random(12345)
>>> stream = [rnd.random() < 0.9 for _ in range(1000)] + [rnd.random() < 0.7 for _ in range(1000)]
>>> det = BernoulliCUSUM(ert=20_000, p0=0.9, random_state=0)
>>> for i, correct in enumerate(stream):
...     if det.update(correct).drift_detected:
...         print(f"Change detected at index {i}")
...         break
Change detected at index 1041
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from abkit.drift._base import DriftError

__all__ = ["BernoulliCUSUM"]


def _excursions(
    llr_hit: float, llr_miss: float, p: float, h: float, n: int, rng: np.random.Generator, max_steps: int = 1_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` excursions from 0 of the CUSUM with observations Bernoulli(p): steps and end value of each."""
    s = np.zeros(n)
    steps = np.zeros(n)
    active = np.arange(n)
    for _ in range(max_steps):
        if active.size == 0:
            break
        x = rng.random(active.size) < p
        s[active] += np.where(x, llr_hit, llr_miss)
        steps[active] += 1
        active = active[(s[active] > 0) & (s[active] < h)]
    return steps, s


class BernoulliCUSUM:
    """CUSUM for a drop of a success rate (accuracy) from ``p0`` to ``p0 - shift``.

    ``update(correct) -> self``; ``drift_detected`` is True at the observation that crossed the threshold.
    ``fit(reference_correct)`` learns ``p0`` when it is not given (clipped to [0.01, 0.99]).
    """

    def __init__(
        self,
        *,
        ert: float = 1000.0,
        shift: float = 0.1,
        p0: float | None = None,
        n_calibration: int = 4000,
        random_state: int | None = 0,
    ) -> None:
        if not (isinstance(ert, (int, float)) and ert > 1):
            raise DriftError(f"ert={ert!r} must be an expected run length (in observations) greater than 1.")
        if not (0 < shift < 1):
            raise DriftError(f"shift={shift!r} must be the accuracy drop to detect, between 0 and 1.")
        if p0 is not None and not (0 < p0 < 1):
            raise DriftError(f"p0={p0!r} must be the reference accuracy, strictly between 0 and 1.")
        self.ert, self.shift, self.p0 = float(ert), float(shift), p0
        self.n_calibration, self.random_state = int(n_calibration), random_state
        if p0 is not None:
            self._calibrate(p0)

    def __repr__(self) -> str:
        return f"BernoulliCUSUM(ert={self.ert!r}, shift={self.shift!r}, p0={self.p0!r})"

    def fit(self, reference: Sequence[bool] | np.ndarray) -> BernoulliCUSUM:
        """Learn ``p0`` from the reference's correctness flags (needs at least 30)."""
        ref = np.asarray(reference, dtype=float)
        if ref.size < 30:
            raise DriftError(f"the reference holds {ref.size} labelled predictions; BernoulliCUSUM needs >= 30.")
        self._calibrate(float(np.clip(ref.mean(), 0.01, 0.99)))
        return self

    def _calibrate(self, p0: float) -> None:
        p1 = max(p0 - self.shift, 0.005)
        self.p0_, self.p1_ = p0, p1
        self.llr_hit_, self.llr_miss_ = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
        self.h_ = self._threshold()
        self._reset()

    def run_length(self, h: float) -> float:
        """Mean run length under no change for threshold ``h`` (seeded Monte Carlo, Page's identity)."""
        rng = np.random.default_rng(self.random_state)
        steps, _ = _excursions(self.llr_hit_, self.llr_miss_, self.p0_, h, self.n_calibration, rng)
        _, end = _excursions(self.llr_hit_, self.llr_miss_, self.p1_, h, self.n_calibration, rng)
        crossed = end >= h
        p_cross = float(np.mean(np.where(crossed, np.exp(-end), 0.0)))
        return float(np.mean(steps)) / p_cross if p_cross > 0 else math.inf

    def _threshold(self) -> float:
        lo, hi = 0.0, max(2.0, 2.0 * math.log(self.ert) + 4.0)
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            if self.run_length(mid) < self.ert:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-3:
                break
        return hi

    def _reset(self) -> None:
        self.statistic_ = 0.0
        self.n_ = 0
        self._drift = False

    @property
    def threshold(self) -> float:
        """The alarm threshold ``h`` calibrated to ``ert``."""
        return self.h_

    @property
    def drift_detected(self) -> bool:
        """Whether the last ``update`` detected a change."""
        return self._drift

    def update(self, x: bool | float) -> BernoulliCUSUM:
        """Add one labelled prediction (True/1 = correct)."""
        if not hasattr(self, "h_"):
            raise DriftError("BernoulliCUSUM needs p0: pass p0= or call .fit(reference_correct) first.")
        if self._drift:
            self._reset()
        self.n_ += 1
        self.statistic_ = max(0.0, self.statistic_ + (self.llr_hit_ if x else self.llr_miss_))
        self._drift = self.statistic_ >= self.h_
        return self
