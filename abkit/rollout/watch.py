"""Drift alarms on one model version's own traffic, for the rollout's gates.

A ``VersionMonitor`` watches the requests one version answers: a labelled-accuracy CUSUM
(``abkit.drift.BernoulliCUSUM``, its false-alarm rate set by the expected run length ``ert`` in labelled
predictions; its reference accuracy is a lower bound, see ``fit``) and, where confidences are the model's own,
a daily two-sample KS test of its confidences (``abkit.drift.KSDrift`` at level ``alpha`` per day, alarming
only on a shift of at least ``ks_effect``). Both compare with the version's **reference**: its
predictions on held-out validation data when it has them (given at ``fit``), else its own first
``reference_days`` days of traffic. An alarm is an ``abkit.drift.Alarm`` record on the version's name and
stays open; the lifecycle passes them to ``abkit.rollout.evidence.gather`` (the machine's drift gate) while the
version is a challenger under test or a new champion being watched, and as champion alarms while it serves.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> m = VersionMonitor("v2", ert=20_000, alpha=0.001).fit(rng.random(2000) < 0.9, rng.uniform(0.6, 1, 2000))
>>> for day in range(6):
...     acc = 0.9 if day < 3 else 0.6
...     _ = m.add(day, f"day {day}", rng.random(400) < acc, rng.uniform(0.6, 1, 400))
>>> [(a.signal, a.window) for a in m.alarms]
[('accuracy_cusum', 'day 3')]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from abkit import format as F
from abkit.drift import Alarm, BernoulliCUSUM, DriftResult, KSDrift

__all__ = ["VersionMonitor"]


class VersionMonitor:
    """Accuracy CUSUM and confidence KS on one version's traffic; ``alarms`` are the open ones."""

    def __init__(
        self,
        version: str,
        *,
        ert: float = 1e6,
        shift: float = 0.1,
        tolerance: float = 0.0,
        alpha: float = 1 / 730,
        ks_effect: float = 0.1,
        confidences: bool = True,
        reference_days: int = 4,
        seed: int = 0,
    ) -> None:
        self.version, self.ert, self.shift, self.alpha, self.ks_effect = version, ert, shift, alpha, ks_effect
        self.tolerance = tolerance
        self.confidences, self.reference_days, self.seed = confidences, reference_days, seed
        self._collected: list[tuple[np.ndarray, np.ndarray]] = []
        self._days = 0
        self.alarms: tuple[Alarm, ...] = ()

    def __repr__(self) -> str:
        return f"VersionMonitor({self.version!r}, ert={self.ert!r}, alpha={self.alpha!r})"

    def fit(self, correct: np.ndarray, confidence: np.ndarray, n_effective: int | None = None) -> VersionMonitor:
        """Set the reference: correctness flags of labelled predictions and the confidences of predictions.

        The CUSUM's in-control accuracy is the lower bound mean − 2·SE − ``tolerance`` (SE from ``n_effective``
        independent items, default the number of flags; give the distinct texts when requests repeat them), so
        neither the reference's own sampling error nor a small gap between validation data and live traffic
        (``tolerance``) turns into false alarms; drops of ``shift`` below it are what the CUSUM is tuned to."""
        correct, confidence = np.asarray(correct, dtype=bool), np.asarray(confidence, dtype=float)
        self.n_reference_ = int(correct.size)
        self.cusum_ = None
        if correct.size >= 30 and 0 < correct.mean() < 1:
            p = float(correct.mean())
            n = max(int(n_effective or correct.size), 1)
            p0 = float(np.clip(p - 2.0 * np.sqrt(p * (1 - p) / n) - self.tolerance, 0.01, 0.99))
            self.cusum_ = BernoulliCUSUM(ert=self.ert, shift=self.shift, p0=p0, random_state=self.seed)
        self.ks_ = (
            KSDrift(alpha=self.alpha, effect_threshold=self.ks_effect).fit(confidence) if self.confidences else None
        )
        return self

    @property
    def fitted(self) -> bool:
        return hasattr(self, "cusum_")

    def add(self, day: int, window: str, correct: np.ndarray, confidence: np.ndarray) -> VersionMonitor:
        """One day of the version's traffic: correctness of its labelled predictions, confidences of all."""
        if not self.fitted:
            self._collected.append((np.asarray(correct, dtype=bool), np.asarray(confidence, dtype=float)))
            self._days += 1
            if self._days >= self.reference_days:
                flags, conf = (np.concatenate(x) for x in zip(*self._collected, strict=True))
                self.fit(flags, conf)
                self._collected = []
            return self
        if self.cusum_ is not None and not self._open("accuracy_cusum"):
            self._cusum(self.cusum_, window, np.asarray(correct, dtype=bool))
        if self.ks_ is not None and not self._open("confidence_ks"):
            outcome = dataclasses.replace(self.ks_.test(confidence), signal="confidence_ks")
            result = outcome.decide(self.alpha)
            if result.alarm:
                why = (
                    f"confidences of {self.version} left its reference: KS D = {F.number(result.statistic)} >= "
                    f"{F.number(result.threshold)} (p {F.p_value(result.p_value)} at level {F.number(self.alpha)} "
                    f"a day; shifts under {F.number(self.ks_effect)} are ignored; {result.n_current:,} predictions)"
                )
                self._raise(result.with_context(variant=self.version, window=window, reasons=(why,)))
        return self

    def _open(self, signal: str) -> bool:
        return any(a.signal == signal for a in self.alarms)

    def _cusum(self, det: BernoulliCUSUM, window: str, correct: np.ndarray) -> None:
        peak, fired = 0.0, False
        for x in correct.tolist():
            fired = det.update(x).drift_detected or fired
            peak = max(peak, det.statistic_)
            if fired:
                break
        if not fired:
            return
        acc = float(correct.mean())
        self._raise(
            DriftResult(
                signal="accuracy_cusum",
                method=f"Bernoulli CUSUM on labelled correctness (drop {self.shift:g}); ERT {self.ert:,.0f}",
                statistic=peak,
                p_value=None,
                effect_size=det.p0_ - acc,
                threshold=det.threshold,
                effect_threshold=0.0,
                alpha=None,
                n_reference=self.n_reference_,
                n_current=int(correct.size),
                alarm=True,
                reasons=(
                    f"accuracy of {self.version} dropped below its reference (lower bound {det.p0_:.3f}): CUSUM reached "
                    f"{F.number(peak)} >= h = {F.number(det.threshold)} (window accuracy {acc:.3f} on {correct.size:,} "
                    f"labelled predictions; ERT {self.ert:,.0f} labelled predictions)",
                ),
                variant=self.version,
                window=window,
            )
        )

    def _raise(self, result: DriftResult) -> None:
        alarm: Any = Alarm.from_result(result, correction="none", seed=self.seed, model_version=self.version)
        self.alarms = (*self.alarms, alarm)
