"""Per-arm sufficient statistics: immutable value classes that pool with ``+``.

A metric is a ratio of per-unit sums, ``Σm / Σd``, where the unit is the randomization unit (the user).
A plain mean has ``d ≡ 1``. The delta method turns the unit-level moments into the variance of the ratio,
which is what makes per-prediction metrics correct when traffic is split by user.

>>> a = ArmStats(n=3, m_sum=3.0, m_ss=5.0, d_sum=6.0, d_ss=14.0, md_sum=8.0)
>>> round(float(a.ratio), 4), round(float(a.moments().var), 4)
(0.5, 0.0625)
>>> float((a + a).n)
6.0
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from abkit.errors import AbkitError

_REL_TOL = 1e-9  # relative rounding tolerance below which a negative variance is clipped to 0


class Moments(NamedTuple):
    """Mean of a metric and the per-unit variance of its estimator: ``se = sqrt(var / n)``."""

    mean: np.ndarray  # point estimate (mean or ratio)
    var: np.ndarray  # per-unit variance (delta method for ratios), so that se² = var / n
    n: np.ndarray  # number of randomization units


def _arr(value: object, name: str, *, nonneg: bool = False) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if nonneg and np.any(a < 0):
        raise AbkitError(f"{name} has negative values {a[a < 0][:3].tolist()}; counts and sums of squares must be >= 0")
    return a


def clip_variance(var: np.ndarray, scale: np.ndarray, name: str = "variance") -> np.ndarray:
    """Clip rounding noise (``var`` slightly below 0) to 0; a clearly negative variance is an error."""
    var = np.asarray(var, dtype=np.float64)
    tol = _REL_TOL * np.abs(np.nan_to_num(np.asarray(scale, dtype=np.float64))) + 1e-15
    bad = var < -tol
    if np.any(bad):
        raise AbkitError(
            f"{name} is negative ({var[bad][:3].tolist()}); the sums are inconsistent — "
            "check that sums of squares are sums of the squared per-unit values"
        )
    return np.where(var < 0, 0.0, var)


def moments_from_sums(n: object, total: object, total_sq: object) -> Moments:
    """Moments of a plain mean from ``n``, ``Σx`` and ``Σx²`` (ddof = 1)."""
    return ArmStats.mean(n, total, total_sq).moments()


def proportion_moments(successes: object, n: object) -> Moments:
    """Moments of a proportion with variance ``p(1 - p)`` (the binomial convention of gbstats)."""
    x = _arr(successes, "successes", nonneg=True)
    nn = _arr(n, "n", nonneg=True)
    if np.any(x > nn):
        raise AbkitError("successes exceed n; a proportion needs 0 <= successes <= n")
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / nn
    return Moments(p, p * (1.0 - p), nn)


@dataclasses.dataclass(frozen=True)
class ArmStats:
    """Unit-level sums of a ratio metric ``Σm/Σd`` for one arm (fields may be arrays: arms × metrics).

    ``n`` units; ``m_sum`` = Σm, ``m_ss`` = Σm², ``d_sum`` = Σd, ``d_ss`` = Σd², ``md_sum`` = Σm·d, all over
    units (users). ``+`` pools two disjoint sets of units (e.g. two partitions of users).
    """

    n: np.ndarray
    m_sum: np.ndarray
    m_ss: np.ndarray
    d_sum: np.ndarray
    d_ss: np.ndarray
    md_sum: np.ndarray

    def __post_init__(self) -> None:
        for f in ("n", "m_ss", "d_sum", "d_ss"):
            object.__setattr__(self, f, _arr(getattr(self, f), f, nonneg=True))
        for f in ("m_sum", "md_sum"):
            object.__setattr__(self, f, _arr(getattr(self, f), f))

    @classmethod
    def mean(cls, n: object, total: object, total_sq: object) -> ArmStats:
        """Sufficient statistics of a plain per-unit mean (denominator 1 per unit)."""
        nn = _arr(n, "n", nonneg=True)
        t = _arr(total, "total")
        return cls(nn, t, _arr(total_sq, "total_sq"), nn, nn, t)

    def __add__(self, other: ArmStats) -> ArmStats:
        if not isinstance(other, ArmStats):
            return NotImplemented
        return ArmStats(*(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)))

    def __getitem__(self, index: object) -> ArmStats:
        """Select arms/metrics from array-valued fields."""
        return ArmStats(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))

    def _central(self, s_xy: np.ndarray, s_x: np.ndarray, s_y: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (s_xy - s_x * s_y / self.n) / (self.n - 1.0)

    def _var(self, ss: np.ndarray, s: np.ndarray) -> np.ndarray:
        # not clipped: only the combined delta-method variance must be >= 0 (checked in ``moments``)
        return self._central(ss, s, s)

    @property
    def m_mean(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.m_sum / self.n

    @property
    def d_mean(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.d_sum / self.n

    @property
    def m_var(self) -> np.ndarray:
        """Sample variance of the per-unit numerator (ddof = 1)."""
        return self._var(self.m_ss, self.m_sum)

    @property
    def d_var(self) -> np.ndarray:
        return self._var(self.d_ss, self.d_sum)

    @property
    def md_cov(self) -> np.ndarray:
        return self._central(self.md_sum, self.m_sum, self.d_sum)

    @property
    def ratio(self) -> np.ndarray:
        """The metric: Σm / Σd (NaN when Σd = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.m_sum / self.d_sum

    def moments(self) -> Moments:
        """Ratio and its delta-method per-unit variance ``(Vm − 2rCmd + r²Vd) / d̄²``."""
        r = self.ratio
        d_bar = self.d_mean
        with np.errstate(divide="ignore", invalid="ignore"):
            m_var, d_var = self.m_var, self.d_var
            v = (m_var - 2.0 * r * self.md_cov + r * r * d_var) / (d_bar * d_bar)
            scale = (np.abs(m_var) + r * r * np.abs(d_var) + 2.0 * np.abs(r * self.md_cov)) / (d_bar * d_bar)
        return Moments(r, clip_variance(v, scale, "delta-method ratio variance"), self.n)


@dataclasses.dataclass(frozen=True)
class CupedStats:
    """Metric ``y = Σm/Σd`` with a pre-period covariate ``x = Σmx/Σdx`` and their unit-level cross sums."""

    y: ArmStats
    x: ArmStats
    m_mx: np.ndarray  # Σ m·mx
    m_dx: np.ndarray  # Σ m·dx
    d_mx: np.ndarray  # Σ d·mx
    d_dx: np.ndarray  # Σ d·dx

    def __post_init__(self) -> None:
        if not np.array_equal(self.y.n, self.x.n):
            raise AbkitError("CupedStats: y.n and x.n differ; metric and covariate must cover the same units")
        for f in ("m_mx", "m_dx", "d_mx", "d_dx"):
            object.__setattr__(self, f, _arr(getattr(self, f), f))

    @classmethod
    def for_means(
        cls, n: object, y_sum: object, y_ss: object, x_sum: object, x_ss: object, xy_sum: object
    ) -> CupedStats:
        """A plain mean with a plain-mean covariate (gbstats' regression adjustment)."""
        y = ArmStats.mean(n, y_sum, y_ss)
        x = ArmStats.mean(n, x_sum, x_ss)
        return cls(y, x, _arr(xy_sum, "xy_sum"), y.m_sum, x.m_sum, y.n)

    def __add__(self, other: CupedStats) -> CupedStats:
        if not isinstance(other, CupedStats):
            return NotImplemented
        return CupedStats(
            self.y + other.y,
            self.x + other.x,
            self.m_mx + other.m_mx,
            self.m_dx + other.m_dx,
            self.d_mx + other.d_mx,
            self.d_dx + other.d_dx,
        )

    def __getitem__(self, index: object) -> CupedStats:
        """Select arms (or days) from array-valued fields."""
        cross = (getattr(self, f)[index] for f in ("m_mx", "m_dx", "d_mx", "d_dx"))
        return CupedStats(self.y[index], self.x[index], *cross)

    def cross_cov(self) -> np.ndarray:
        """Per-unit covariance of the ratio estimators of y and x (delta method), scaled like ``Moments.var``."""
        n = self.y.n

        def cov(s_ab: np.ndarray, s_a: np.ndarray, s_b: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                return (s_ab - s_a * s_b / n) / (n - 1.0)

        ry, rx = self.y.ratio, self.x.ratio
        c = (
            cov(self.m_mx, self.y.m_sum, self.x.m_sum)
            - rx * cov(self.m_dx, self.y.m_sum, self.x.d_sum)
            - ry * cov(self.d_mx, self.y.d_sum, self.x.m_sum)
            + ry * rx * cov(self.d_dx, self.y.d_sum, self.x.d_sum)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            return c / (self.y.d_mean * self.x.d_mean)
