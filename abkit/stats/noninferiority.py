"""Tests against a margin: non-inferiority and superiority, absolute or relative, at a fixed horizon,
always-valid (peeking-safe) or group-sequential with alpha spending.

Let Δ be the effect oriented so that positive is better (T − C, or C − T for a lower-is-better metric) and
δ ≥ 0 the margin. One-sided at level α:

- non-inferiority: H0: Δ ≤ −δ against H1: Δ > −δ ("the challenger is no worse than δ");
- superiority:     H0: Δ ≤ +δ against H1: Δ > +δ ("better by more than δ"; δ = 0: simply better).

``relative=True`` tests the lift (μT − μC)/|μC| (delta method) and reads δ as a fraction of the control mean.
The result carries the one-sided confidence bound in the metric's own direction (``ci_low`` for a higher-is-
better metric, ``ci_high`` for a lower-is-better one; the other side is infinite), the null boundary
(``threshold``) on that scale, and ``passed`` (bound beyond the threshold, i.e. p below the level used).

>>> from abkit.stats.aggregates import moments_from_sums
>>> c = moments_from_sums(5000, 10021.0, 25142.0)
>>> t = moments_from_sums(5000, 9892.0, 24510.0)
>>> r = margin_test(c, t, margin=0.02 * 10021 / 5000, alpha=0.01, use_t=False)
>>> round(float(r.estimate), 4), round(float(r.ci_low), 4), bool(r.passed)
(-0.0258, -0.0723, False)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats as sps

from abkit.errors import AbkitError
from abkit.stats._common import critical, sf
from abkit.stats.aggregates import Moments
from abkit.stats.config import check_alpha, resolve
from abkit.stats.frequentist import effect_estimate, welch_df
from abkit.stats.sequential import SPENDING_KINDS, group_sequential_bounds

HYPOTHESES = ("non-inferiority", "superiority")
INFERENCES = ("fixed", "sequential", "group-sequential")


class MarginResult(NamedTuple):
    """A one-sided test of an effect against a margin (arrays broadcast over arms/metrics)."""

    control: np.ndarray  # control estimate
    treatment: np.ndarray  # treatment estimate
    estimate: np.ndarray  # effect T − C (absolute) or (T − C)/|C| (relative), in the metric's own sign
    ci_low: np.ndarray  # one-sided confidence bound (−inf when the metric is lower-is-better)
    ci_high: np.ndarray  # one-sided confidence bound (+inf when the metric is higher-is-better)
    threshold: np.ndarray  # null boundary on the effect's scale: −δ/+δ, sign flipped for lower-is-better
    se: np.ndarray  # standard error of the effect
    statistic: np.ndarray  # (oriented effect − oriented null boundary) / se
    p_value: np.ndarray  # one-sided p-value (always-valid for "sequential", nominal for "group-sequential")
    alpha_used: np.ndarray  # level the p-value is compared with (the nominal level at this look if group-sequential)
    passed: np.ndarray  # True where H0 is rejected: non-inferior, or superior by the margin
    hypothesis: str  # "non-inferiority" | "superiority"
    method: str  # human-readable method


def margin_test(
    control: Moments,
    treatment: Moments,
    *,
    margin: object = 0.0,
    hypothesis: str = "non-inferiority",
    higher_is_better: bool = True,
    relative: bool = False,
    alpha: float | None = None,
    inference: str = "fixed",
    use_t: bool = True,
    sequential_tuning: float | None = None,
    fractions: object = None,
    spending: str = "power",
    rho: float = 2.0,
) -> MarginResult:
    """One-sided test of treatment against control with margin ``margin`` (δ ≥ 0; a fraction if ``relative``).

    ``inference``: ``"fixed"`` (Welch t, or z with ``use_t=False``), ``"sequential"`` (always-valid: the
    one-sided normal-mixture boundary of the confidence sequence abkit reports, tuned at
    ``sequential_tuning`` units) or ``"group-sequential"`` (planned looks at information ``fractions``, the
    last being this look; α spent by ``spending``: "power" with exponent ``rho``, "obrien-fleming", "pocock").
    """
    c = Moments(*(np.asarray(x, dtype=np.float64) for x in control))
    t = Moments(*(np.asarray(x, dtype=np.float64) for x in treatment))
    est, se = effect_estimate(c, t, relative)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = welch_df(c, t) if use_t and not relative and inference == "fixed" else np.inf
    r = effect_margin_test(
        est,
        se,
        n=c.n + t.n,
        df=df,
        margin=margin,
        hypothesis=hypothesis,
        higher_is_better=higher_is_better,
        alpha=alpha,
        inference=inference,
        sequential_tuning=sequential_tuning,
        fractions=fractions,
        spending=spending,
        rho=rho,
    )
    scale = "relative (delta method)" if relative else "absolute"
    return r._replace(control=c.mean, treatment=t.mean, method=r.method.replace("(absolute)", f"({scale})"))


def effect_margin_test(
    estimate: object,
    se: object,
    *,
    n: object,
    df: object = np.inf,
    margin: object = 0.0,
    hypothesis: str = "non-inferiority",
    higher_is_better: bool = True,
    alpha: float | None = None,
    inference: str = "fixed",
    sequential_tuning: float | None = None,
    fractions: object = None,
    spending: str = "power",
    rho: float = 2.0,
) -> MarginResult:
    """The margin test of :func:`margin_test` from an effect ``estimate`` (treatment − control), its standard
    error ``se``, the units ``n`` in both arms (the sequential clock) and degrees of freedom ``df`` (inf: z)."""
    a = check_alpha(alpha)
    if hypothesis not in HYPOTHESES:
        raise AbkitError(f"hypothesis={hypothesis!r} is unknown; use one of {HYPOTHESES}")
    if inference not in INFERENCES:
        raise AbkitError(f"inference={inference!r} is unknown; use one of {INFERENCES}")
    delta = np.asarray(margin, dtype=np.float64)
    if np.any(~np.isfinite(delta)) or np.any(delta < 0):
        raise AbkitError(f"margin={margin!r} must be finite and >= 0 (the size of the allowed loss or required gain)")
    est, s = np.asarray(estimate, dtype=np.float64), np.asarray(se, dtype=np.float64)
    sign = 1.0 if higher_is_better else -1.0
    null = delta if hypothesis == "superiority" else -delta  # on the oriented (positive = better) scale
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = (sign * est - null) / s
        if inference == "fixed":
            d = np.asarray(df, dtype=np.float64)
            z_crit, p = critical(a, d, "greater"), sf(stat, d)
            level = np.full(np.shape(p), a)
            how = ("z" if np.all(np.isinf(d)) else "Welch t") + ", fixed horizon"
        elif inference == "sequential":
            tuning = float(resolve("sequential_tuning", sequential_tuning))
            z_crit, p = _one_sided_mixture(stat, np.asarray(n, dtype=np.float64), a, tuning)
            level = np.full(np.shape(p), a)
            how = f"always-valid one-sided normal mixture (N={tuning:g})"
        else:
            if spending not in SPENDING_KINDS:
                raise AbkitError(f"spending={spending!r} is unknown; use one of {SPENDING_KINDS}")
            if fractions is None:
                raise AbkitError(
                    "group-sequential inference needs fractions: the information fractions of the "
                    "looks so far, e.g. [0.25, 0.5] (users now / users planned at each look)"
                )
            b = group_sequential_bounds(fractions, a, spending, rho=rho, sides=1)
            z_crit = b.z[-1]
            p = sps.norm.sf(stat)
            level = np.full(np.shape(p), b.nominal_p[-1])
            how = f"group-sequential, {spending} spending" + (f" (ρ = {rho:g})" if spending == "power" else "")
            how += f", look {b.fractions.size} at t = {b.fractions[-1]:.3g}"
        bound = sign * est - z_crit * s  # oriented lower bound
    low = np.where(higher_is_better, bound, -np.inf) + 0.0 * est
    high = np.where(higher_is_better, np.inf, -bound) + 0.0 * est
    passed = np.asarray(np.isfinite(bound) & (bound > null) & (p < level))
    method = f"{hypothesis} with margin {float(np.max(delta)):g} (absolute), one-sided α = {a:g}; {how}"
    nan = np.full(np.shape(est), np.nan)
    return MarginResult(
        nan, nan, est, low, high, sign * null + 0.0 * est, s, stat, p, level, passed, hypothesis, method
    )


def _one_sided_mixture(stat: np.ndarray, n: np.ndarray, alpha: float, tuning: float) -> tuple[np.ndarray, np.ndarray]:
    """Always-valid critical value and p-value of a standardized statistic ``stat`` after ``n`` units.

    The one-sided normal-mixture martingale (Howard et al. 2021, half-normal mixing with the confidence
    sequence's ρ), in u = ρ·Z·sqrt(n)/sqrt(nρ² + 1): M = 2Φ(u)·exp(u²/2)/sqrt(nρ² + 1). Ville's inequality
    bounds P(M ever ≥ 1/α) by α; the critical Z solves M = 1/α and p = min(1, 1/M).
    """
    if tuning <= 0:
        raise AbkitError(f"sequential_tuning={tuning!r} must be > 0 (the sample size where the bound is tightest)")
    la = -2.0 * np.log(alpha)
    rho2 = (la + np.log(la + 1.0)) / tuning  # the ρ² of abkit's confidence sequence
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = n * rho2 + 1.0
        scale = np.sqrt(n * rho2 / a)  # u = scale · Z
        target = 0.5 * np.log(a) - np.log(alpha)
        lo, hi = np.zeros_like(target), np.sqrt(2.0 * target)
        for _ in range(80):  # bisection on u²/2 + log 2Φ(u) = target (increasing in u >= 0)
            mid = 0.5 * (lo + hi)
            above = 0.5 * mid * mid + np.log(2.0 * sps.norm.cdf(mid)) > target
            hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
        z_crit = hi / scale
        u = scale * np.asarray(stat, dtype=np.float64)
        log_m = np.log(2.0) + sps.norm.logcdf(u) + 0.5 * u * u - 0.5 * np.log(a)
        p = np.minimum(1.0, np.exp(-log_m))
    return z_crit, np.where(np.isnan(p), np.nan, p)
