"""Power, minimum detectable effect and sample size for means, proportions and ratio metrics, fixed
horizon or sequential (confidence sequence), and days to decision from a traffic rate.

The metric enters as a control mean and a per-unit variance (for a proportion p(1 − p), for a ratio
metric the delta-method variance from ``ArmStats.moments()``); both arms share the variance.

>>> round(power(0.05, mean=10, var=3909.9997749994377, n_total=400_000, n_arms=3), 5)
0.52144
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

from abkit.errors import AbkitError
from abkit.stats.config import check_alpha, check_alternative
from abkit.stats.frequentist import relative_variance, welch_df
from abkit.stats.aggregates import Moments
from abkit.stats.sequential import confidence_sequence


def _arms(n_total: float, n_arms: int, weights: object | None) -> tuple[float, float]:
    if n_arms < 2:
        raise AbkitError(f"n_arms={n_arms!r} must be >= 2")
    if weights is None:
        return n_total / n_arms, n_total / n_arms
    w = np.asarray(weights, dtype=np.float64)
    if w.size < 2 or np.any(w <= 0) or abs(w.sum() - 1) > 1e-6:
        raise AbkitError(f"weights={w.tolist()} must be > 0 and sum to 1; the first is control, the second treatment")
    return n_total * w[0], n_total * w[1]


def power(
    effect: float, *, mean: float, var: float, n_total: float, n_arms: int = 2, weights: object | None = None,
    relative: bool = True, alpha: float | None = None, alternative: str | None = None, use_t: bool = False,
    sequential_tuning: float | None = None,
) -> float:
    """Probability of a significant result for a true ``effect`` (relative lift when ``relative``).

    Fixed horizon: z (or Welch non-central t with ``use_t``). Sequential (``sequential_tuning`` = N): the
    standard error is inflated by the ratio of the confidence-sequence half width to
    the fixed-horizon one at n = both arms' units (GrowthBook's sequential power).
    """
    a, alt = check_alpha(alpha), check_alternative(alternative)
    if var < 0 or n_total <= 0:
        raise AbkitError(f"var={var!r} must be >= 0 and n_total={n_total!r} > 0")
    n_c, n_t = _arms(n_total, n_arms, weights)
    mean_t = mean * (1.0 + effect) if relative else mean + effect
    c = Moments(np.float64(mean), np.float64(var), np.float64(n_c))
    t = Moments(np.float64(mean_t), np.float64(var), np.float64(n_t))
    se = float(np.sqrt(relative_variance(c, t))) if relative else math.sqrt(var / n_c + var / n_t)
    if se == 0:
        return 1.0 if effect != 0 else 0.0
    if sequential_tuning is not None:
        # GrowthBook: inflate the standard error by (sequence half width)/(fixed half width) at n = nC + nT
        z_seq = float(confidence_sequence(0.0, 1.0, n_c + n_t, tuning=sequential_tuning, alpha=a).halfwidth)
        se *= z_seq / float(sps.norm.isf(a / 2.0))
        use_t = False
    nc = effect / se
    level = 1 - (a / 2 if alt == "two-sided" else a)
    if use_t:  # non-central t with Welch's degrees of freedom
        df = float(welch_df(c, t))
        q = float(special.stdtrit(df, level))
        upper, lower = 1.0 - float(special.nctdtr(df, nc, q)), float(special.nctdtr(df, nc, -q))
    else:  # scipy.special directly: this runs inside root finding, where frozen distributions cost
        q = float(special.ndtri(level))
        upper, lower = float(special.ndtr(nc - q)), float(special.ndtr(-q - nc))
    if alt == "greater":
        return upper
    if alt == "less":
        return lower
    return upper + lower


def mde(target_power: float = 0.8, **kwargs: object) -> float:
    """Smallest effect (same scale as ``power``'s ``effect``) detected with ``target_power``; negative for
    alternative "less". Keyword arguments as for :func:`power` (except ``effect``)."""
    if not 0 < target_power < 1:
        raise AbkitError(f"target_power={target_power!r} must lie in (0, 1), e.g. 0.8")
    sign = -1.0 if kwargs.get("alternative") == "less" else 1.0
    f = lambda e: power(sign * e, **kwargs) - target_power  # noqa: E731
    hi = 1e-6
    while f(hi) < 0:
        hi *= 2.0
        if hi > 1e9:
            raise AbkitError("no effect reaches the target power; check var and n_total")
    return sign * optimize.brentq(f, 0.0, hi, xtol=1e-12, rtol=1e-12)


def sample_size(effect: float, target_power: float = 0.8, **kwargs: object) -> int:
    """Total units (all arms) for ``target_power`` at ``effect``; keyword arguments as for :func:`power`."""
    if not 0 < target_power < 1:
        raise AbkitError(f"target_power={target_power!r} must lie in (0, 1), e.g. 0.8")
    if effect == 0:
        raise AbkitError("effect=0 cannot be detected; give the smallest effect worth detecting")
    f = lambda n: power(effect, n_total=n, **kwargs) - target_power  # noqa: E731
    lo, hi = 4.0, 10.0
    while f(hi) < 0:
        lo, hi = hi, hi * 2.0
        if hi > 1e13:
            raise AbkitError("sample size beyond 1e13 units; the effect is too small for this variance")
    return int(math.ceil(optimize.brentq(f, lo, hi, xtol=1e-9)))


def days_to_decision(n_required: float, n_current: float, units_per_day: float) -> float:
    """Days still needed to reach ``n_required`` units at ``units_per_day`` (0 when already there)."""
    if units_per_day <= 0:
        raise AbkitError(f"units_per_day={units_per_day!r} must be > 0 to project a decision date")
    return max(0.0, (n_required - n_current) / units_per_day)
