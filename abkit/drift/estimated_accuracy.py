"""Accuracy without labels: confidence-based performance estimation (CBPE) from calibrated confidence.

``fit`` calibrates the model's confidence on the labelled reference (isotonic regression of "prediction
correct" on confidence). A window's estimated accuracy is then the mean calibrated confidence of its
predictions: for a binary model with P(y=1) = p this is NannyML's (Σ_{ŷ=1} p + Σ_{ŷ=0} (1 − p)) / n. The
check is one-sided: has the estimated accuracy dropped below the reference's (Welch z on the two means)?
When labels have arrived for part of the window, the result also carries the realised accuracy and the
band in which it should lie if the estimate is right: est ± z·sqrt(Σ c(1 − c))/m over the labelled
predictions (their correctness is a sum of independent Bernoulli(c) draws).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> conf = rng.uniform(0.5, 1.0, 2000)
>>> det = EstimatedAccuracyDrift(alpha=0.01).fit((conf, rng.random(2000) < conf))
>>> r = det.calculate((rng.uniform(0.5, 0.8, 500), None))
>>> r.alarm, round(r.details["estimated_accuracy"], 2)
(True, 0.66)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from abkit.drift._base import BatchDetector, Outcome

__all__ = ["EstimatedAccuracyDrift", "expected_accuracy"]


def expected_accuracy(confidence: np.ndarray) -> float:
    """Expected accuracy of predictions whose calibrated confidence (probability of the predicted label) is
    ``confidence``: its mean."""
    return float(np.mean(confidence))


class EstimatedAccuracyDrift(BatchDetector):
    """Inputs: ``(confidence, correct)`` pairs; ``correct`` holds True/False or NaN/None for "no label yet"
    (it may be None for a whole window)."""

    signal = "estimated_accuracy"
    method = (
        "CBPE: mean isotonic-calibrated confidence; drop vs reference by one-sided Welch z; "
        "realised-accuracy band est +/- z*sqrt(sum c(1-c))/m"
    )
    default_effect_threshold = 0.02

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        min_size: int = 30,
        effect_threshold: float | None = None,
        min_labelled: int = 30,
        band_level: float = 0.95,
    ) -> None:
        super().__init__(alpha=alpha, min_size=min_size, effect_threshold=effect_threshold)
        self.min_labelled, self.band_level = int(min_labelled), float(band_level)

    def _prepare(self, values: Any) -> tuple[Any, list[str]]:
        confidence, correct = values
        conf = np.asarray(confidence, dtype=float).ravel()
        corr = (
            np.full(conf.size, np.nan)
            if correct is None
            else np.array([np.nan if v is None else float(v) for v in np.asarray(correct, dtype=object).ravel()])
        )
        if corr.size != conf.size:
            raise ValueError(f"confidence has {conf.size} values but correct has {corr.size}")
        bad = int(np.isnan(conf).sum())
        return _Pairs(conf, corr), ([f"{bad} of {conf.size} confidences are NaN"] if bad else [])

    def _reference_problem(self, reference: Any) -> str | None:
        labelled = int((~np.isnan(reference.correct)).sum())
        if labelled < self.min_labelled:
            return f"{labelled} labelled predictions; calibration needs at least {self.min_labelled}"
        return None

    def _fit(self, reference: Any) -> None:
        from sklearn.isotonic import IsotonicRegression

        keep = ~np.isnan(reference.correct)
        self.calibrator_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
        self.calibrator_.fit(reference.confidence[keep], reference.correct[keep])
        cal = self.calibrator_.predict(reference.confidence)
        self.reference_estimate_ = expected_accuracy(cal)
        self.reference_var_ = float(np.var(cal, ddof=1)) / cal.size
        self.reference_accuracy_ = float(np.mean(reference.correct[keep]))

    def _test(self, current: Any) -> Outcome:
        cal = self.calibrator_.predict(current.confidence)
        est = expected_accuracy(cal)
        se = float(np.sqrt(self.reference_var_ + np.var(cal, ddof=1) / cal.size))
        drop = self.reference_estimate_ - est
        p = float(stats.norm.sf(drop / se)) if se > 0 else (0.0 if drop > 0 else 1.0)
        details: dict[str, Any] = {
            "estimated_accuracy": est,
            "reference_estimate": self.reference_estimate_,
            "reference_accuracy": self.reference_accuracy_,
        }
        labelled = ~np.isnan(current.correct)
        if labelled.any():
            c = cal[labelled]
            half = float(stats.norm.isf((1 - self.band_level) / 2)) * np.sqrt(np.sum(c * (1 - c))) / c.size
            realised = float(np.mean(current.correct[labelled]))
            details |= {
                "n_labelled": int(labelled.sum()),
                "realised_accuracy": realised,
                "expected_on_labelled": float(c.mean()),
                "band_low": float(c.mean() - half),
                "band_high": float(c.mean() + half),
                "realised_in_band": bool(c.mean() - half <= realised <= c.mean() + half),
            }
        return self._outcome(len(cal), drop, p, lambda a: max(float(stats.norm.isf(a)) * se, 1e-12), **details)


class _Pairs:
    """Confidence and correctness of the same predictions (``len`` is the number of predictions)."""

    def __init__(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        self.confidence, self.correct = confidence, correct

    def __len__(self) -> int:
        return self.confidence.size
