"""Bayesian comparisons: normal posterior of the (relative) effect with an optional Gaussian prior,
chance to beat control and expected loss; exact Beta–Binomial chance to beat by numerical integration.

Zero or undefined variance (an arm with one unit, all outcomes equal) is "insufficient data" as in the
other methods: the posterior summary is NaN, never a chance to win of 1.

>>> from abkit.stats.aggregates import proportion_moments
>>> r = bayes_test(proportion_moments(49, 100), proportion_moments(51, 100))
>>> round(float(r.chance_to_win), 5), round(float(r.risk_control), 4)
(0.60918, 0.0814)
>>> round(beta_chance_to_beat(49, 100, 51, 100), 3)
0.611
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import integrate
from scipy import stats as sps

from abkit.errors import AbkitError
from abkit.stats._common import estimable, usable_se
from abkit.stats.aggregates import Moments
from abkit.stats.config import check_alpha, resolve
from abkit.stats.frequentist import effect_estimate


class BayesResult(NamedTuple):
    """Posterior summary of the effect of treatment vs control (arrays broadcast)."""

    estimate: np.ndarray  # posterior mean of the effect
    ci_low: np.ndarray  # lower bound of the equal-tailed credible interval
    ci_high: np.ndarray  # upper bound
    sd: np.ndarray  # posterior standard deviation
    chance_to_win: np.ndarray  # P(treatment better than control) (direction set by ``inverse``)
    risk_control: np.ndarray  # expected loss of keeping control: E[max(gain of treatment, 0)]
    risk_treatment: np.ndarray  # expected loss of shipping treatment: E[max(loss of treatment, 0)]
    method: str


def normal_posterior(
    estimate: object,
    se: object,
    *,
    prior_mean: float | None = None,
    prior_var: float | None = None,
    inverse: bool = False,
    alpha: float | None = None,
) -> BayesResult:
    """Posterior N(μ, σ²) of an effect from its estimate, standard error and a Gaussian prior.

    ``prior_var=None`` is the flat (improper) prior: the posterior is N(estimate, se²). ``inverse=True``
    means lower is better (e.g. latency): chance to win and the two risks swap direction.
    """
    a = check_alpha(alpha)
    pm = float(resolve("prior_mean", prior_mean))
    pv = resolve("prior_var", prior_var)
    est, s = np.asarray(estimate, dtype=np.float64), np.asarray(se, dtype=np.float64)
    if pv is not None:
        if pv <= 0:
            raise AbkitError(f"prior_var={pv!r} must be > 0, or None for a flat prior")
        with np.errstate(divide="ignore", invalid="ignore"):
            prec = 1.0 / pv + 1.0 / (s * s)
            est = (pm / pv + est / (s * s)) / prec
            s = np.sqrt(1.0 / prec)
    z = sps.norm.isf(a / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi0 = sps.norm.cdf(-est / s)  # P(X < 0)
        pdf0 = sps.norm.pdf(est / s)
        up = est * (1.0 - phi0) + s * pdf0  # E[max(X, 0)]
        down = -est * phi0 + s * pdf0  # E[max(−X, 0)]
    ctw, r_c, r_t = (phi0, down, up) if inverse else (1.0 - phi0, up, down)
    prior = "flat prior" if pv is None else f"N({pm:g}, {pv:g}) prior"
    ok = usable_se(se) & np.isfinite(np.asarray(estimate, dtype=np.float64))
    est, s, ctw, r_c, r_t = (np.where(ok, x, np.nan) for x in (est, s, ctw, r_c, r_t))
    return BayesResult(est, est - z * s, est + z * s, s, ctw, r_c, r_t, f"normal posterior, {prior}")


def bayes_test(
    control: Moments,
    treatment: Moments,
    *,
    relative: bool = True,
    prior_mean: float | None = None,
    prior_var: float | None = None,
    inverse: bool = False,
    alpha: float | None = None,
) -> BayesResult:
    """Chance to beat control and expected loss for means or delta-method ratios (gbstats convention:
    relative effect (μT − μC)/|μC| with its delta-method variance; prior on the same scale)."""
    c = Moments(*(np.asarray(x, dtype=np.float64) for x in control))
    t = Moments(*(np.asarray(x, dtype=np.float64) for x in treatment))
    est, se = effect_estimate(c, t, relative)
    se = np.where(estimable(c.var, c.n, t.var, t.n), se, np.nan)
    r = normal_posterior(est, se, prior_mean=prior_mean, prior_var=prior_var, inverse=inverse, alpha=alpha)
    return r._replace(method=r.method + (", relative" if relative else ", absolute"))


def beta_chance_to_beat(
    x_control: int, n_control: int, x_treatment: int, n_treatment: int, *, prior_a: float = 1.0, prior_b: float = 1.0
) -> float:
    """P(p_T > p_C) under independent Beta(prior_a + x, prior_b + n − x) posteriors, by adaptive quadrature
    of ``∫ f_T(p) F_C(p) dp`` over the region that holds the posterior mass (no Monte-Carlo noise)."""
    for name, v in (
        ("x_control", x_control),
        ("n_control", n_control),
        ("x_treatment", x_treatment),
        ("n_treatment", n_treatment),
    ):
        if v < 0:
            raise AbkitError(f"{name}={v!r} must be >= 0")
    if x_control > n_control or x_treatment > n_treatment:
        raise AbkitError("successes exceed n; need 0 <= x <= n in both arms")
    if prior_a <= 0 or prior_b <= 0:
        raise AbkitError("prior_a and prior_b must be > 0 (Beta prior parameters)")
    bc = sps.beta(prior_a + x_control, prior_b + n_control - x_control)
    bt = sps.beta(prior_a + x_treatment, prior_b + n_treatment - x_treatment)
    lo = max(0.0, min(bc.ppf(1e-14), bt.ppf(1e-14)))
    hi = min(1.0, max(bc.isf(1e-14), bt.isf(1e-14)))
    pts = sorted({float(np.clip(v, lo, hi)) for v in (bc.mean(), bt.mean())})
    val, _ = integrate.quad(lambda p: bt.pdf(p) * bc.cdf(p), lo, hi, points=pts, limit=200, epsabs=1e-13, epsrel=1e-11)
    return float(np.clip(val + bt.sf(hi), 0.0, 1.0))  # above hi, F_C = 1
