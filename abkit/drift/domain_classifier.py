"""Input-text drift by a domain classifier: can a model tell current texts from reference texts?

Both windows are split into a training and a held-out half (stratified, seeded). TF-IDF word and bigram
features (fit on all texts, without side labels) and a logistic regression are trained on one half; the
held-out half is scored by a model that never saw it, and a one-sided Mann–Whitney U of "current" against
"reference" scores tests AUC > 0.5. Under no drift the held-out labels are a random assignment given the
texts and the model, so this p-value is exact (up to the normal approximation of U). Cross-fitting over
several folds and summing their U statistics would score every text, but the folds' statistics are
dependent (each model saw the others' held-out texts); on real data with near-duplicate sentences that
made the sum over-dispersed and cried wolf, so abkit keeps the single honest split.
Statistic and effect size: the held-out AUC.

>>> ref = ["the battery lasts long", "the screen is sharp", "great sound and battery"] * 40
>>> cur = ["the pasta was delicious", "friendly waiter and tasty food"] * 60
>>> det = DomainClassifierDrift(alpha=0.01, random_state=0).fit(ref)
>>> r = det.calculate(cur)
>>> r.alarm, round(r.statistic, 2)
(True, 1.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from abkit.drift._base import BatchDetector, Outcome
from abkit.drift._text import prepare_texts

__all__ = ["DomainClassifierDrift"]


def _mann_whitney(scores: np.ndarray, is_current: np.ndarray) -> tuple[float, float, float]:
    """U of the current scores over the reference ones, its null mean and variance (tie-corrected)."""
    ranks = stats.rankdata(scores)
    m, n = int(is_current.sum()), int((~is_current).sum())
    u = float(ranks[is_current].sum() - m * (m + 1) / 2)
    _, counts = np.unique(scores, return_counts=True)
    total = m + n
    ties = float(np.sum(counts**3 - counts))
    var = m * n / 12.0 * ((total + 1) - ties / (total * (total - 1)))
    return u, m * n / 2.0, var


class DomainClassifierDrift(BatchDetector):
    """Domain classifier (TF-IDF + logistic regression) scored on a held-out half, with a Mann–Whitney test."""

    signal = "domain_classifier"
    method = "held-out AUC of a TF-IDF logistic-regression domain classifier (50/50 split); one-sided Mann-Whitney"
    default_effect_threshold = 0.55  # Evidently's ROC-AUC threshold for large samples

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        min_size: int = 30,
        effect_threshold: float | None = None,
        train_share: float = 0.5,
        max_per_side: int = 1000,
        random_state: int | None = 0,
    ) -> None:
        super().__init__(alpha=alpha, min_size=min_size, effect_threshold=effect_threshold)
        self.train_share, self.max_per_side, self.random_state = float(train_share), int(max_per_side), random_state

    def _prepare(self, values: Any) -> tuple[np.ndarray, list[str]]:
        return prepare_texts(values)

    def _fit(self, reference: np.ndarray) -> None:
        self.reference_ = reference

    def _test(self, current: np.ndarray) -> Outcome:
        rng = np.random.default_rng(self.random_state)
        ref = self.reference_
        if len(ref) > self.max_per_side:
            ref = ref[rng.choice(len(ref), self.max_per_side, replace=False)]
        cur = (
            current
            if len(current) <= self.max_per_side
            else current[rng.choice(len(current), self.max_per_side, replace=False)]
        )
        texts = np.concatenate([ref, cur])
        y = np.r_[np.zeros(len(ref), bool), np.ones(len(cur), bool)]
        held = np.zeros(len(y), dtype=bool)
        for side in (False, True):  # stratified split
            idx = rng.permutation(np.flatnonzero(y == side))
            held[idx[round(self.train_share * idx.size) :]] = True
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        # The vocabulary and IDF weights use no side labels, so fitting them on all texts keeps the held-out
        # labels exchangeable under no drift.
        features = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1).fit_transform(texts)
        with threadpool_limits(limits=1, user_api="blas"):  # small solves: one thread is faster and load-proof
            model = LogisticRegression(C=1.0, max_iter=200).fit(features[~held], y[~held])
            scores = model.decision_function(features[held])
        u, mean, var = _mann_whitney(scores, y[held])
        pairs = int(y[held].sum()) * int((~y[held]).sum())
        auc, sd = u / pairs, float(np.sqrt(var))
        p = float(stats.norm.sf((u - mean) / sd)) if sd > 0 else (0.0 if auc > 0.5 else 1.0)
        return self._outcome(
            len(current),
            auc,
            p,
            lambda a: 0.5 + float(stats.norm.isf(a)) * sd / pairs,
            n_reference_used=len(ref),
            n_current_used=len(cur),
            n_held_out=int(held.sum()),
        )
