"""Input-text drift by a domain classifier: can a model tell current texts from reference texts?

TF-IDF word and bigram features and a logistic regression are cross-fitted over ``n_folds`` stratified
folds, so every text is scored by a model that never saw it (out-of-fold). Within each fold the held-out
scores give a Mann–Whitney U of "current" against "reference"; the folds' U statistics are summed and
standardised (their variances added), one-sided: AUC > 0.5 means the classifier separates the windows.
Statistic and effect size: the out-of-fold AUC (pooled over folds).

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
    ties = float(np.sum(counts ** 3 - counts))
    var = m * n / 12.0 * ((total + 1) - ties / (total * (total - 1)))
    return u, m * n / 2.0, var


class DomainClassifierDrift(BatchDetector):
    """Out-of-fold domain classifier (TF-IDF + logistic regression) with a Mann–Whitney test per fold."""

    signal = "domain_classifier"
    method = "out-of-fold AUC of a TF-IDF logistic-regression domain classifier; one-sided Mann-Whitney per fold"
    default_effect_threshold = 0.55  # Evidently's ROC-AUC threshold for large samples

    def __init__(self, *, alpha: float = 0.05, min_size: int = 30, effect_threshold: float | None = None,
                 n_folds: int = 5, max_per_side: int = 1000, random_state: int | None = 0) -> None:
        super().__init__(alpha=alpha, min_size=min_size, effect_threshold=effect_threshold)
        self.n_folds, self.max_per_side, self.random_state = int(n_folds), int(max_per_side), random_state

    def _prepare(self, values: Any) -> tuple[np.ndarray, list[str]]:
        return prepare_texts(values)

    def _fit(self, reference: np.ndarray) -> None:
        self.reference_ = reference

    def _test(self, current: np.ndarray) -> Outcome:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(self.random_state)
        ref = self.reference_
        if len(ref) > self.max_per_side:
            ref = ref[rng.choice(len(ref), self.max_per_side, replace=False)]
        cur = current if len(current) <= self.max_per_side else current[rng.choice(len(current), self.max_per_side,
                                                                                    replace=False)]
        texts = np.concatenate([ref, cur])
        y = np.r_[np.zeros(len(ref), bool), np.ones(len(cur), bool)]
        fold = np.empty(len(y), dtype=int)
        for side in (False, True):  # stratified folds
            idx = np.flatnonzero(y == side)
            fold[rng.permutation(idx)] = np.arange(idx.size) % self.n_folds
        u_sum = mean_sum = var_sum = pairs = 0.0
        for k in range(self.n_folds):
            train, held = fold != k, fold == k
            vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
            model = LogisticRegression(C=1.0, max_iter=200)
            model.fit(vec.fit_transform(texts[train]), y[train])
            scores = model.decision_function(vec.transform(texts[held]))
            u, mean, var = _mann_whitney(scores, y[held])
            u_sum, mean_sum, var_sum = u_sum + u, mean_sum + mean, var_sum + var
            pairs += int(y[held].sum()) * int((~y[held]).sum())
        auc = u_sum / pairs
        sd = np.sqrt(var_sum)
        p = float(stats.norm.sf((u_sum - mean_sum) / sd)) if sd > 0 else (0.0 if auc > 0.5 else 1.0)
        return self._outcome(len(current), auc, p, lambda a: 0.5 + float(stats.norm.isf(a)) * sd / pairs,
                             n_reference_used=len(ref), n_current_used=len(cur), folds=self.n_folds)
