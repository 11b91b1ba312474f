"""Out-of-vocabulary drift: the share of a text's words never seen in the reference.

The vocabulary is learnt on one half of the reference; the other half gives the OOV rate expected without
drift (measuring it on the texts the vocabulary came from would be zero by construction). The check is a
one-sided Welch z-test that the current mean OOV rate exceeds that baseline.

>>> ref = ["the battery lasts long", "the screen is sharp", "great sound and battery"] * 40
>>> det = OOVDrift(alpha=0.01, random_state=0).fit(ref)
>>> det.calculate(["the pasta was delicious", "friendly waiter and tasty food"] * 30).alarm
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from abkit.drift._base import BatchDetector, Outcome
from abkit.drift._text import prepare_texts, tokens

__all__ = ["OOVDrift"]


class OOVDrift(BatchDetector):
    """Mean per-text OOV rate of the window minus that of held-out reference texts (Welch z, one-sided)."""

    signal = "text_oov"
    method = "mean share of out-of-vocabulary words per text minus the held-out reference's; one-sided Welch z"
    default_effect_threshold = 0.01

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        min_size: int = 30,
        effect_threshold: float | None = None,
        random_state: int | None = 0,
    ) -> None:
        super().__init__(alpha=alpha, min_size=min_size, effect_threshold=effect_threshold)
        self.random_state = random_state

    def _prepare(self, values: Any) -> tuple[np.ndarray, list[str]]:
        return prepare_texts(values)

    def _rates(self, texts: np.ndarray) -> np.ndarray:
        out = np.zeros(len(texts))
        for i, text in enumerate(texts):
            words = tokens(text)
            if words:
                out[i] = sum(w not in self.vocabulary_ for w in words) / len(words)
        return out

    def _fit(self, reference: np.ndarray) -> None:
        order = np.random.default_rng(self.random_state).permutation(len(reference))
        half = len(reference) // 2
        self.vocabulary_ = frozenset(w for t in reference[order[:half]] for w in tokens(t))
        self.baseline_ = self._rates(reference[order[half:]])

    def _test(self, current: np.ndarray) -> Outcome:
        rates = self._rates(current)
        diff = float(rates.mean() - self.baseline_.mean())
        se = float(np.sqrt(rates.var(ddof=1) / rates.size + self.baseline_.var(ddof=1) / self.baseline_.size))
        if se == 0.0:
            p = 0.0 if diff > 0 else 1.0
        else:
            p = float(stats.norm.sf(diff / se))
        return self._outcome(
            current.size,
            diff,
            p,
            lambda a: max(float(stats.norm.isf(a)) * se, 1e-12),
            current_oov_rate=float(rates.mean()),
            reference_oov_rate=float(self.baseline_.mean()),
        )
