"""Smooth functions of several per-user sums (delta method, clustered by user), e.g. macro-averaged F1.

A ratio Σm/Σd is the one-pair case (``ArmStats``). Macro-F1 over K classes, the mean of K ratios
2·TPₖ / (predictedₖ + actualₖ), needs the joint covariance of all 2K per-user sums: ``VectorStats`` holds
``n``, the sums Σx (last axis: the variables) and the cross-products Σx·xᵀ over users, pools with ``+``,
and turns any smooth function of the means into ``Moments`` with variance ∇fᵀ Σ ∇f.

>>> import numpy as np
>>> x = np.array([[1.0, 2.0], [0.0, 1.0], [2.0, 2.0], [1.0, 3.0]])   # per-user (m, d)
>>> v = VectorStats.from_units(x)
>>> mo = v.mean_of_ratios([(0, 1)])
>>> round(float(mo.mean), 4), round(float(mo.var), 4)
(0.5, 0.125)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from abkit.errors import AbkitError
from abkit.stats.aggregates import Moments, clip_variance


@dataclasses.dataclass(frozen=True)
class VectorStats:
    """Unit-level sums of k variables: ``n`` units, ``s`` = Σx (…, k), ``ss`` = Σx·xᵀ (…, k, k)."""

    n: np.ndarray
    s: np.ndarray
    ss: np.ndarray

    def __post_init__(self) -> None:
        n, s, ss = (np.asarray(getattr(self, f), dtype=np.float64) for f in ("n", "s", "ss"))
        if s.ndim < 1 or ss.shape != s.shape + s.shape[-1:]:
            raise AbkitError(
                f"VectorStats: ss has shape {ss.shape}, expected s.shape + (k,) = {s.shape + s.shape[-1:]}"
            )
        if np.any(n < 0):
            raise AbkitError("VectorStats: n must be >= 0")
        for f, v in (("n", n), ("s", s), ("ss", ss)):
            object.__setattr__(self, f, v)

    @classmethod
    def from_units(cls, x: object) -> VectorStats:
        """Sums of per-unit values ``x`` of shape (units, k) (for tests and small data)."""
        a = np.asarray(x, dtype=np.float64)
        return cls(np.asarray(float(a.shape[0])), a.sum(axis=0), a.T @ a)

    def __add__(self, other: VectorStats) -> VectorStats:
        if not isinstance(other, VectorStats):
            return NotImplemented
        return VectorStats(self.n + other.n, self.s + other.s, self.ss + other.ss)

    @property
    def means(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.s / self.n[..., None]

    def cov(self) -> np.ndarray:
        """Per-unit covariance matrix of the variables (ddof = 1)."""
        n = self.n[..., None, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.ss - self.s[..., :, None] * self.s[..., None, :] / n) / (n - 1.0)

    def moments(self, value: np.ndarray, gradient: np.ndarray) -> Moments:
        """``Moments`` of f(means) given its value and gradient (…, k) at the means: var = ∇fᵀ Σ ∇f."""
        g = np.asarray(gradient, dtype=np.float64)
        c = self.cov()
        with np.errstate(invalid="ignore"):
            var = np.einsum("...i,...ij,...j->...", g, c, g)
            scale = np.einsum("...i,...ij,...j->...", np.abs(g), np.abs(c), np.abs(g))
        return Moments(np.asarray(value, dtype=np.float64), clip_variance(var, scale, "delta-method variance"), self.n)

    def mean_of_ratios(self, pairs: Sequence[tuple[int, int]]) -> Moments:
        """The mean over ``pairs`` (numerator index, denominator index) of the ratios Σxᵢ/Σxⱼ, e.g. macro-F1."""
        if not pairs:
            raise AbkitError("mean_of_ratios needs at least one (numerator, denominator) pair")
        k = self.s.shape[-1]
        for i, j in pairs:
            if not (0 <= i < k and 0 <= j < k):
                raise AbkitError(f"pair ({i}, {j}) is outside the {k} variables")
        mu = self.means
        grad = np.zeros(mu.shape)
        value = np.zeros(mu.shape[:-1])
        w = 1.0 / len(pairs)
        with np.errstate(divide="ignore", invalid="ignore"):
            for i, j in pairs:
                r = mu[..., i] / mu[..., j]
                value = value + w * r
                grad[..., i] += w / mu[..., j]
                grad[..., j] -= w * r / mu[..., j]
        return self.moments(value, grad)
