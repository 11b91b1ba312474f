"""Embedding drift: maximum mean discrepancy (MMD) with a Gaussian kernel, permutation p-value with +1.

The kernel is approximated by ``n_features`` random Fourier features (Rahimi & Recht, 2007), so each side is
summarised by its mean feature vector and the statistic is MMD² = ‖mean φ(ref) − mean φ(cur)‖². Memory and
time grow linearly in the sample sizes: 10,000 × 384 per side needs a few tens of MB, never an n × n kernel
matrix. The random-feature kernel is itself a positive-definite kernel, so the permutation test is exact
for it. Bandwidth: the median heuristic on the reference, σ = sqrt(0.5 · median squared distance).
p = (1 + #{permuted ≥ observed}) / (1 + n_permutations), never 0.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> det = MMDDrift(alpha=0.01, random_state=0).fit(rng.normal(size=(300, 8)))
>>> det.calculate(rng.normal(size=(200, 8))).alarm, det.calculate(rng.normal(0.4, 1, size=(200, 8))).alarm
(False, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from abkit.drift._base import BatchDetector, Outcome

__all__ = ["MMDDrift", "sigma_median"]


def sigma_median(squared_distances: np.ndarray, *, same: bool = True) -> float:
    """Median-heuristic bandwidth sqrt(0.5 · median squared distance); with ``same`` the zero diagonal of a
    square matrix of a sample against itself is left out."""
    d = np.asarray(squared_distances, dtype=float)
    if same and d.ndim == 2 and d.shape[0] == d.shape[1]:
        d = d[~np.eye(d.shape[0], dtype=bool)]
    return float(np.sqrt(0.5 * np.median(d)))


class MMDDrift(BatchDetector):
    """MMD² of random-Fourier-feature means; input: an (n, d) array of embeddings per side."""

    signal = "embedding_mmd"
    method = (
        "MMD^2 with a Gaussian kernel (median-heuristic bandwidth) via random Fourier features; "
        "permutation p-value counted with +1"
    )

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        min_size: int = 30,
        effect_threshold: float | None = None,
        n_permutations: int = 1999,
        n_features: int = 256,
        bandwidth_sample: int = 1000,
        random_state: int | None = 0,
    ) -> None:
        super().__init__(alpha=alpha, min_size=min_size, effect_threshold=effect_threshold)
        self.n_permutations, self.n_features = int(n_permutations), int(n_features)
        self.bandwidth_sample, self.random_state = int(bandwidth_sample), random_state

    def _prepare(self, values: Any) -> tuple[np.ndarray, list[str]]:
        arr = np.asarray(values, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr.reshape(0, 0) if arr.size == 0 else arr[:, None]
        bad = int(np.isnan(arr).any(axis=1).sum()) if arr.size else 0
        return arr, ([f"{bad} of {len(arr)} embeddings hold NaN"] if bad else [])

    def _fit(self, reference: np.ndarray) -> None:
        rng = np.random.default_rng(self.random_state)
        pick = reference[rng.choice(len(reference), min(len(reference), self.bandwidth_sample), replace=False)]
        sq = np.sum(pick**2, axis=1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * pick @ pick.T, 0.0)
        self.sigma_ = max(sigma_median(d2), 1e-6)
        self.omega_ = (rng.normal(size=(reference.shape[1], self.n_features)) / self.sigma_).astype(np.float32)
        self.phase_ = rng.uniform(0, 2 * np.pi, self.n_features).astype(np.float32)
        self.reference_features_ = self._features(reference)
        self.dim_ = reference.shape[1]

    def _features(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.omega_
        z += self.phase_
        np.cos(z, out=z)
        z *= np.float32(np.sqrt(2.0 / self.n_features))
        return z

    def _test(self, current: np.ndarray) -> Outcome:
        if current.shape[1] != self.dim_:
            raise ValueError(f"current embeddings have {current.shape[1]} dimensions; the reference has {self.dim_}")
        rng = np.random.default_rng(None if self.random_state is None else self.random_state + 1)
        feats = np.concatenate([self.reference_features_, self._features(current)])
        n, m = len(self.reference_features_), len(current)
        weights = np.r_[np.full(n, 1.0 / n), np.full(m, -1.0 / m)].astype(np.float32)
        observed = float(np.sum((weights @ feats) ** 2))
        null = np.empty(self.n_permutations)
        # Small products run far faster on one BLAS thread, above all on a busy machine (threads wait on each other).
        with threadpool_limits(limits=1 if n + m < 4000 else None, user_api="blas"):
            for start in range(0, self.n_permutations, 128):  # blocks of permutations keep memory flat
                k = min(128, self.n_permutations - start)
                perm = rng.permuted(np.broadcast_to(weights, (k, n + m)), axis=1)
                null[start : start + k] = np.sum((perm @ feats) ** 2, axis=1)
        null.sort()
        p = (1 + np.sum(null >= observed)) / (1 + self.n_permutations)

        def critical(alpha: float) -> float:
            allowed = int(np.floor(alpha * (1 + self.n_permutations))) - 1  # permuted values >= stat still alarming
            return float(np.nextafter(null[::-1][allowed], np.inf)) if allowed >= 0 else float("inf")

        return self._outcome(m, observed, float(p), critical, sigma=self.sigma_, n_permutations=self.n_permutations)
