"""Drift of a categorical signal (predicted labels, true labels): χ² test, Jensen–Shannon effect size.

>>> det = LabelDistributionDrift(alpha=0.01).fit(["pos"] * 500 + ["neg"] * 500)
>>> r = det.calculate(["pos"] * 350 + ["neg"] * 150)
>>> r.alarm, round(r.effect_size, 3)
(True, 0.174)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from abkit.drift._base import BatchDetector, Outcome
from abkit.drift._distributions import category_counts, chi2_two_sample, js_distance

__all__ = ["LabelDistributionDrift"]


class LabelDistributionDrift(BatchDetector):
    """Pearson χ² of homogeneity (reference vs current counts; the reference's sampling noise counts too).
    Effect size: Jensen–Shannon *distance* with base-2 logarithms (in [0, 1])."""

    signal = "label_distribution"
    method = "Pearson chi-square of homogeneity (2 x k); effect: Jensen-Shannon distance, log base 2"
    default_effect_threshold = 0.05

    def _prepare(self, values: Any) -> tuple[np.ndarray, list[str]]:
        import pandas as pd

        arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=object).ravel()
        missing = int((pd.isna(arr) | (arr == "")).sum()) if arr.size else 0
        return arr, ([f"{missing} of {arr.size} labels are missing"] if missing else [])

    def _reference_problem(self, reference: np.ndarray) -> str | None:
        import pandas as pd

        found = pd.unique(pd.Series(reference).astype(str))
        return f"it holds one class only ({found[0]!r}); a label distribution needs two" if len(found) < 2 else None

    def _fit(self, reference: Sequence[Any]) -> None:
        self.reference_ = np.asarray(reference, dtype=object)

    def _test(self, current: np.ndarray) -> Outcome:
        cats, ref, cur = category_counts(self.reference_, current)
        chi2, df = chi2_two_sample(ref, cur)
        return self._outcome(
            current.size,
            chi2,
            float(stats.chi2.sf(chi2, df)),
            lambda a: float(stats.chi2.isf(a, df)),
            effect_size=js_distance(ref, cur, base=2.0),
            categories=cats,
        )
