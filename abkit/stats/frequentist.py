"""Fixed-horizon tests on sufficient statistics: Welch/Student t and z on means and ratios (delta method),
CUPED, and proportions (pooled/unpooled z with/without continuity correction, exact tests).

All functions are vectorized: every field of the inputs may be an array (arms × metrics) and the result
holds arrays of the broadcast shape.

Insufficient data (an arm with fewer than two units, zero or undefined variance): the estimate is kept and
the standard error, statistic, interval and p-value are NaN — the same result as the sequential and
Bayesian methods give on that input, never p = 0 from a zero-width interval.

>>> from abkit.stats.aggregates import moments_from_sums
>>> a = moments_from_sums(3407, 1396.87, 52377.9767)
>>> b = moments_from_sums(3461, 2422.7, 134698.29)
>>> r = ttest(a, b)
>>> round(float(r.estimate), 5), round(float(r.p_value), 5)
(0.29, 0.02016)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats as sps

from abkit.errors import AbkitError
from abkit.stats._common import INSUFFICIENT, critical, estimable, interval, p_value, usable_se
from abkit.stats.aggregates import CupedStats, Moments
from abkit.stats.config import check_alpha, check_alternative, resolve

RELATIVE_METHODS = ("delta", "log")


class TestResult(NamedTuple):
    """Comparison of treatment with control on one metric (arrays broadcast over arms/metrics)."""

    control: np.ndarray  # control estimate
    treatment: np.ndarray  # treatment estimate
    estimate: np.ndarray  # effect: treatment − control (absolute) or (treatment − control)/|control| (relative)
    ci_low: np.ndarray  # lower confidence bound of the effect (−inf for alternative "less")
    ci_high: np.ndarray  # upper confidence bound of the effect (+inf for alternative "greater")
    se: np.ndarray  # standard error of the effect
    statistic: np.ndarray  # standardized statistic
    p_value: np.ndarray  # p-value for the alternative
    df: np.ndarray  # degrees of freedom (inf for z)
    method: str  # human-readable method name


def _withhold(result: TestResult, ok: np.ndarray) -> TestResult:
    """NaN standard error, statistic, interval and p-value where ``ok`` is False or the estimate is not finite
    (insufficient data)."""
    ok = np.asarray(ok) & usable_se(result.se) & np.isfinite(result.estimate)
    if np.all(ok):
        return result
    nan = np.nan

    def cut(x: np.ndarray) -> np.ndarray:
        return np.where(ok, x, nan)

    return result._replace(
        se=cut(result.se),
        statistic=cut(result.statistic),
        ci_low=cut(result.ci_low),
        ci_high=cut(result.ci_high),
        p_value=cut(result.p_value),
        method=result.method + f"; NaN = {INSUFFICIENT}",
    )


def welch_df(control: Moments, treatment: Moments) -> np.ndarray:
    """Welch–Satterthwaite degrees of freedom (in shares of the total variance, so huge variances do not
    overflow)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = control.var / control.n
        b = treatment.var / treatment.n
        wa, wb = a / (a + b), b / (a + b)
        return 1.0 / (wa * wa / (control.n - 1.0) + wb * wb / (treatment.n - 1.0))


def relative_variance(control: Moments, treatment: Moments) -> np.ndarray:
    """Delta-method variance of (μT − μC)/|μC|: ``vT/(nT μC²) + vC μT²/(nC μC⁴)``."""
    mc2 = control.mean**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return treatment.var / (treatment.n * mc2) + control.var * treatment.mean**2 / (control.n * mc2 * mc2)


def effect_estimate(control: Moments, treatment: Moments, relative: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(effect, standard error) of float-array moments: the absolute difference of means, or with ``relative``
    the lift (μT − μC)/|μC| with its delta-method variance. NaN where undefined."""
    c, t = control, treatment
    with np.errstate(divide="ignore", invalid="ignore"):
        if relative:
            return (t.mean - c.mean) / np.abs(c.mean), np.sqrt(relative_variance(c, t))
        return t.mean - c.mean, np.sqrt(c.var / c.n + t.var / t.n)


def _se_df(
    var_c: np.ndarray, n_c: np.ndarray, var_t: np.ndarray, n_t: np.ndarray, *, equal_var: bool, use_t: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Standard error of a difference and its degrees of freedom (Welch, pooled Student, or z = inf)."""
    if equal_var:
        pooled = ((n_c - 1) * var_c + (n_t - 1) * var_t) / (n_c + n_t - 2)
        se, df = np.sqrt(pooled * (1 / n_c + 1 / n_t)), n_c + n_t - 2.0
    else:
        se = np.sqrt(var_c / n_c + var_t / n_t)
        nan = np.full_like(var_c, np.nan, dtype=np.float64)  # welch_df reads only var and n
        df = welch_df(Moments(nan, var_c, n_c), Moments(nan, var_t, n_t))
    return se, (np.asarray(df, dtype=np.float64) if use_t else np.full(np.shape(se), np.inf))


def ttest(
    control: Moments,
    treatment: Moments,
    *,
    relative: bool = False,
    alternative: str | None = None,
    alpha: float | None = None,
    use_t: bool = True,
    equal_var: bool = False,
    relative_ci: str | None = None,
) -> TestResult:
    """Two-sample test of means (or delta-method ratios) given per-arm ``Moments``.

    ``relative=True`` reports the lift (μT − μC)/|μC|. ``relative_ci="delta"`` (gbstats) tests and bounds
    the lift with its delta-method standard error; ``"log"`` (tea-tasting) keeps the p-value of the absolute
    difference and bounds the lift on the log-ratio scale.
    """
    alt = check_alternative(alternative)
    a = check_alpha(alpha)
    rel_method = resolve("relative_ci", relative_ci)
    if rel_method not in RELATIVE_METHODS:
        raise AbkitError(f"relative_ci={rel_method!r} is unknown; use one of {RELATIVE_METHODS}")
    c = Moments(*(np.asarray(x, dtype=np.float64) for x in control))
    t = Moments(*(np.asarray(x, dtype=np.float64) for x in treatment))
    if np.any(c.n < 0) or np.any(t.n < 0):
        raise AbkitError("n must be >= 0 in both arms")
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = t.mean - c.mean
        se_abs, df = _se_df(c.var, c.n, t.var, t.n, equal_var=equal_var, use_t=use_t)
        if relative and rel_method == "delta":
            est = diff / np.abs(c.mean)
            se = np.sqrt(relative_variance(c, t))
            stat = est / se
            low, high = interval(est, critical(a, df, alt) * se, alt)
        elif relative:  # log-ratio interval; the p-value stays that of the absolute difference
            stat = diff / se_abs
            est = t.mean / c.mean - 1.0
            se_log, df_log = _se_df(c.var / c.mean**2, c.n, t.var / t.mean**2, t.n, equal_var=equal_var, use_t=use_t)
            low_l, high_l = interval(np.log(t.mean / c.mean), critical(a, df_log, alt) * se_log, alt)
            low, high = np.exp(low_l) - 1.0, np.exp(high_l) - 1.0
            se = np.abs(est + 1.0) * se_log
        else:
            est, se = diff, se_abs
            stat = est / se
            low, high = interval(est, critical(a, df, alt) * se, alt)
        p = p_value(stat, df, alt)
    dist = ("Student t" if equal_var else "Welch t") if use_t else "z"
    scale = f"relative ({rel_method})" if relative else "absolute"
    res = TestResult(c.mean, t.mean, est, low, high, se, stat, p, df, f"{dist}, {scale}")
    return _withhold(res, estimable(c.var, c.n, t.var, t.n))


def cuped_adjust(control: CupedStats, treatment: CupedStats) -> tuple[Moments, Moments, np.ndarray]:
    """CUPED-adjusted ``Moments`` of both arms and θ, estimated on the pooled arms.

    θ = cov(ŷ, x̂)/var(x̂) on the pooled sample; each arm's mean becomes ŷ − θ(x̂ − x̂_pooled) and its
    per-unit variance var(y) − 2θ cov(y, x) + θ² var(x) (delta method for ratio metrics).
    """
    pooled = control + treatment
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = pooled.cross_cov() / pooled.x.moments().var
    theta = np.where(np.isfinite(theta), theta, 0.0)
    x_pool = pooled.x.ratio
    out = []
    for arm in (control, treatment):
        y, x = arm.y.moments(), arm.x.moments()
        var = y.var - 2.0 * theta * arm.cross_cov() + theta * theta * x.var
        out.append(Moments(y.mean - theta * (x.mean - x_pool), np.maximum(var, 0.0), y.n))
    return out[0], out[1], theta


def cuped_lift(control: CupedStats, treatment: CupedStats) -> tuple[np.ndarray, np.ndarray]:
    """(lift, standard error) of the CUPED-adjusted means of ``cuped_adjust``: (μ̃T − μ̃C)/|μ̃C| with
    μ̃ = ȳ − θ(x̄ − x̄_pooled), by the delta method over the four per-arm estimators (ȳC, x̄C, ȳT, x̄T).

    The pooled covariate mean x̄_pooled = wC·x̄C + wT·x̄T (w: each arm's share of Σ covariate denominator) sits
    in *both* adjusted means, so μ̃C depends on the treatment's x̄ and μ̃T on the control's: the gradient of
    R = μ̃T/μ̃C takes that into account, which an independent-arms formula on (μ̃C, var̃C), (μ̃T, var̃T) would not.
    θ and the weights are held fixed (their sampling error is of a smaller order, as for the difference). With
    no effect (μ̃T = μ̃C) the variance is that of the adjusted difference over μ̃C².
    """
    c_adj, t_adj, theta = cuped_adjust(control, treatment)
    with np.errstate(divide="ignore", invalid="ignore"):
        dc, dt = control.x.d_sum, treatment.x.d_sum
        w_c = np.where(dc + dt > 0, dc / (dc + dt), 0.5)
        mu_c, mu_t = c_adj.mean, t_adj.mean
        shared = theta * (w_c * mu_c + (1.0 - w_c) * mu_t) / mu_c**2  # d R / d x̄C = −d R / d x̄T
        grads = ((-mu_t / mu_c**2, shared, control), (1.0 / mu_c, -shared, treatment))
        var = np.zeros(np.broadcast(mu_c, mu_t).shape)
        for g_y, g_x, arm in grads:
            y, x = arm.y.moments(), arm.x.moments()
            var = var + (g_y * g_y * y.var + 2.0 * g_y * g_x * arm.cross_cov() + g_x * g_x * x.var) / y.n
        return (mu_t - mu_c) / np.abs(mu_c), np.sqrt(var)


def cuped_ttest(
    control: CupedStats,
    treatment: CupedStats,
    *,
    relative: bool = False,
    alternative: str | None = None,
    alpha: float | None = None,
    use_t: bool = True,
    relative_ci: str | None = None,
    lift_over: str = "raw",
) -> TestResult:
    """Welch t (or z) on CUPED-adjusted means. The relative lift (``relative_ci="delta"``) is taken over the
    *unadjusted* control mean with ``lift_over="raw"`` (gbstats convention), with the delta-method variance of
    the adjusted difference over that mean; ``lift_over="adjusted"`` takes it over the adjusted control mean,
    the lift of the adjusted means (``cuped_lift``), which is what the analysis reports beside the adjusted
    difference."""
    if lift_over not in ("raw", "adjusted"):
        raise AbkitError(f"lift_over={lift_over!r} is unknown; use 'raw' or 'adjusted'")
    c_adj, t_adj, theta = cuped_adjust(control, treatment)
    if not relative or resolve("relative_ci", relative_ci) == "log":
        res = ttest(
            c_adj, t_adj, relative=relative, alternative=alternative, alpha=alpha, use_t=use_t, relative_ci=relative_ci
        )
        return res._replace(method=res.method + ", CUPED")
    alt, a = check_alternative(alternative), check_alpha(alpha)
    yc = control.y.moments()
    with np.errstate(divide="ignore", invalid="ignore"):
        if lift_over == "adjusted":
            est, se = cuped_lift(control, treatment)
        else:
            mu = yc.mean
            est = (t_adj.mean - c_adj.mean) / np.abs(mu)
            # delta method of diff/μC; gbstats evaluates the control gradient at the raw treatment mean
            g_y = -treatment.y.ratio / mu**2
            g_x = theta / mu
            cov_cx = control.cross_cov()
            var_c = (g_y**2 * yc.var + 2 * g_y * g_x * cov_cx + g_x**2 * control.x.moments().var) / yc.n
            var_t = t_adj.var / (t_adj.n * mu**2)
            se = np.sqrt(var_c + var_t)
        df = welch_df(c_adj, t_adj) if use_t else np.full_like(se, np.inf)
        stat = est / se
        low, high = interval(est, critical(a, df, alt) * se, alt)
        p = p_value(stat, df, alt)
    over = "over the adjusted control mean" if lift_over == "adjusted" else "over the raw control mean"
    res = TestResult(
        c_adj.mean,
        t_adj.mean,
        est,
        low,
        high,
        se,
        stat,
        p,
        df,
        f"{'Welch t' if use_t else 'z'}, relative (delta, {over}), CUPED",
    )
    return _withhold(res, estimable(c_adj.var, c_adj.n, t_adj.var, t_adj.n))


def proportions_ztest(
    x_control: object,
    n_control: object,
    x_treatment: object,
    n_treatment: object,
    *,
    pooled: bool = True,
    correction: bool = True,
    relative: bool = False,
    alternative: str | None = None,
    alpha: float | None = None,
) -> TestResult:
    """z-test of two proportions with ``pooled`` (or unpooled) variance for both test and interval.

    The continuity correction ``cc = 0.5(1/nC + 1/nT)`` shrinks |difference| for the statistic and widens the
    interval (tea-tasting's convention). ``relative=True`` bounds the lift pT/pC − 1 on the log scale (half
    width widened by cc/pC); the p-value is always that of the difference.
    """
    alt, a = check_alternative(alternative), check_alpha(alpha)
    xc, nc, xt, nt = (np.asarray(v, dtype=np.float64) for v in (x_control, n_control, x_treatment, n_treatment))
    if np.any(np.stack(np.broadcast_arrays(xc, nc, xt, nt)) < 0) or np.any(xc > nc) or np.any(xt > nt):
        raise AbkitError("proportions need 0 <= successes <= n in both arms")
    with np.errstate(divide="ignore", invalid="ignore"):
        pc, pt = xc / nc, xt / nt
        diff = pt - pc
        se_un = np.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt)
        if pooled:
            pp = (xc + xt) / (nc + nt)
            se_test = np.sqrt(pp * (1 - pp) * (1 / nc + 1 / nt))
        else:
            se_test = se_un
        cc = 0.5 * (1 / nc + 1 / nt) if correction else np.zeros_like(diff)
        if alt == "two-sided":
            num = np.sign(diff) * np.maximum(np.abs(diff) - cc, 0.0)
        elif alt == "greater":
            num = diff - cc
        else:
            num = diff + cc
        stat = num / se_test
        p = p_value(stat, None, alt)
        z = critical(a, None, alt)
        if relative:
            if pooled:
                se_log = np.sqrt((1 - pp) / pp * (1 / nc + 1 / nt))
            else:
                se_log = np.sqrt((1 - pc) / (nc * pc) + (1 - pt) / (nt * pt))
            est, se = pt / pc - 1.0, pt / pc * se_log
            low_l, high_l = interval(np.log(pt / pc), z * se_log + cc / pc, alt)
            low, high = np.exp(low_l) - 1.0, np.exp(high_l) - 1.0
        else:
            est, se = diff, se_test
            low, high = interval(diff, z * se_test + cc, alt)
    name = f"z ({'pooled' if pooled else 'unpooled'}{', continuity-corrected' if correction else ''})"
    name += ", relative (log)" if relative else ", absolute"
    inf = np.full_like(diff, np.inf)
    return _withhold(TestResult(pc, pt, est, low, high, se, stat, p, inf, name), usable_se(se_test))


EXACT_METHODS = ("fisher", "barnard", "boschloo")


def proportions_exact(
    x_control: int,
    n_control: int,
    x_treatment: int,
    n_treatment: int,
    *,
    method: str = "fisher",
    alternative: str | None = None,
) -> float:
    """Exact p-value for a 2×2 table (small samples): Fisher, Barnard (pooled) or Boschloo."""
    alt = check_alternative(alternative)
    for name, v in (
        ("x_control", x_control),
        ("n_control", n_control),
        ("x_treatment", x_treatment),
        ("n_treatment", n_treatment),
    ):
        if int(v) != v or v < 0:
            raise AbkitError(f"{name}={v!r} must be a non-negative integer count")
    if x_control > n_control or x_treatment > n_treatment:
        raise AbkitError("successes exceed n; an exact test needs 0 <= successes <= n")
    # rows: treatment, control; columns: success, failure — "greater" means treatment rate is higher
    table = np.array([[x_treatment, n_treatment - x_treatment], [x_control, n_control - x_control]], dtype=np.int64)
    if method == "fisher":
        return float(sps.fisher_exact(table, alternative=alt).pvalue)
    if method == "barnard":
        return float(sps.barnard_exact(table.T, alternative=alt, pooled=True).pvalue)
    if method == "boschloo":
        return float(sps.boschloo_exact(table.T, alternative=alt).pvalue)
    raise AbkitError(f"method={method!r} is unknown; use one of {EXACT_METHODS}")


def chi2_contingency_pvalue(counts: object, *, correction: bool = True, lambda_: str = "pearson") -> float:
    """p-value of the χ² (``lambda_="pearson"``) or G (``"log-likelihood"``) test of a r×c count table."""
    table = np.asarray(counts, dtype=np.float64)
    if np.any(table < 0):
        raise AbkitError("counts must be >= 0")
    return float(sps.chi2_contingency(table, correction=correction, lambda_=lambda_).pvalue)
