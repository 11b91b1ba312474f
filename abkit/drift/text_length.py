"""Drift of text length (words per text), by the two-sample KS test on the token counts.

>>> det = TextLengthDrift(alpha=0.01).fit(["a short text"] * 50 + ["two words"] * 50)
>>> det.calculate(["a much longer text than any seen before"] * 60).alarm
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from abkit.drift._text import prepare_texts, tokens
from abkit.drift.ks import KSDrift

__all__ = ["TextLengthDrift"]


class TextLengthDrift(KSDrift):
    """KS on the number of word tokens per text (ties make the asymptotic p conservative)."""

    signal = "text_length"
    method = "two-sample Kolmogorov-Smirnov on words per text"
    default_effect_threshold = 0.05

    def _prepare(self, values: Any) -> tuple[np.ndarray, list[str]]:
        texts, problems = prepare_texts(values)
        if problems:
            return texts, problems
        return np.array([len(tokens(t)) for t in texts], dtype=float), []
