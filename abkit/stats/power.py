"""Power, minimum detectable effect and sample size for means, proportions and ratio metrics, fixed
horizon or sequential (confidence sequence), and days to decision from a traffic rate.

The metric enters as a control mean and a per-unit variance (for a ratio metric the delta-method variance
from ``ArmStats.moments()``); both arms share the variance. A proportion is sized with ``binomial=True``:
pooled variance under the null, each arm's own under the alternative.

>>> round(power(0.05, mean=10, var=3909.9997749994377, n_total=400_000, n_arms=3), 5)
0.52144
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

from abkit.errors import AbkitError
from abkit.stats.aggregates import Moments
from abkit.stats.config import check_alpha, check_alternative
from abkit.stats.frequentist import relative_variance, welch_df
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
    effect: float,
    *,
    mean: float,
    var: float | None = None,
    n_total: float,
    n_arms: int = 2,
    weights: object | None = None,
    relative: bool = True,
    alpha: float | None = None,
    alternative: str | None = None,
    use_t: bool = False,
    sequential_tuning: float | None = None,
    binomial: bool = False,
) -> float:
    """Probability of a significant result for a true ``effect`` (relative lift when ``relative``).

    Fixed horizon: z (or Welch non-central t with ``use_t``). Sequential (``sequential_tuning`` = N): the
    standard error is inflated by the ratio of the confidence-sequence half width to
    the fixed-horizon one at n = both arms' units (GrowthBook's sequential power).
    ``binomial=True``: ``mean`` is control's proportion and ``var`` is not used; the test statistic's
    standard error is the pooled one under the null and each arm's own p(1 − p) under the alternative
    (the two-proportion z-test; as statsmodels' ``power_proportions_2indep``).
    """
    a, alt = check_alpha(alpha), check_alternative(alternative)
    if n_total <= 0:
        raise AbkitError(f"n_total={n_total!r} must be > 0")
    n_c, n_t = _arms(n_total, n_arms, weights)
    mean_t = mean * (1.0 + effect) if relative else mean + effect
    if binomial:
        return _binomial_power(mean, mean_t, n_c, n_t, a, alt, sequential_tuning)
    if var is None or not var >= 0:
        raise AbkitError(f"var={var!r} must be >= 0 (the per-unit variance; binomial=True for a proportion)")
    c = Moments(*(np.asarray(v, dtype=np.float64) for v in (mean, var, n_c)))
    t = Moments(*(np.asarray(v, dtype=np.float64) for v in (mean_t, var, n_t)))
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
    return _by_alternative(upper, lower, alt)


def _by_alternative(upper: float, lower: float, alt: str) -> float:
    if alt == "greater":
        return upper
    if alt == "less":
        return lower
    return upper + lower


def _binomial_power(
    p_c: float, p_t: float, n_c: float, n_t: float, a: float, alt: str, sequential_tuning: float | None
) -> float:
    """Power of the pooled two-proportion z-test: se under H0 from the pooled proportion, under H1 from each
    arm's own ``p(1 − p)``."""
    if not (0.0 < p_c < 1.0 and 0.0 <= p_t <= 1.0):
        raise AbkitError(f"proportions {p_c!r} (control) and {p_t!r} (treatment) must lie in (0, 1) and [0, 1]")
    pooled = (n_c * p_c + n_t * p_t) / (n_c + n_t)
    se0 = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t))
    se1 = math.sqrt(p_c * (1.0 - p_c) / n_c + p_t * (1.0 - p_t) / n_t)
    if sequential_tuning is not None:
        z_seq = float(confidence_sequence(0.0, 1.0, n_c + n_t, tuning=sequential_tuning, alpha=a).halfwidth)
        factor = z_seq / float(sps.norm.isf(a / 2.0))
        se0, se1 = se0 * factor, se1 * factor
    diff = p_t - p_c
    if se1 == 0:
        return 1.0 if diff != 0 else 0.0
    q = float(special.ndtri(1 - (a / 2 if alt == "two-sided" else a)))
    upper, lower = float(special.ndtr((diff - q * se0) / se1)), float(special.ndtr((-diff - q * se0) / se1))
    return _by_alternative(upper, lower, alt)


def mde(target_power: float = 0.8, **kwargs: Any) -> float:
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


def sample_size(effect: float, target_power: float = 0.8, **kwargs: Any) -> int:
    """Total units (all arms) for ``target_power`` at ``effect``; keyword arguments as for :func:`power`."""
    if not 0 < target_power < 1:
        raise AbkitError(f"target_power={target_power!r} must lie in (0, 1), e.g. 0.8")
    if effect == 0:
        raise AbkitError("effect=0 cannot be detected; give the smallest effect worth detecting")
    f = lambda n: power(effect, n_total=n, **kwargs) - target_power  # noqa: E731
    lo, hi = 4.0, 10.0
    if f(lo) >= 0:  # two units per arm already suffice (a tiny variance): the smallest testable design
        return int(lo)
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
