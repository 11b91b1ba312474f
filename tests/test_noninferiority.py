"""Margin tests (non-inferiority, superiority) and power-family alpha spending: published spotify-confidence
numbers, independent computations (statsmodels, scipy) and simulation of the type-I error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from abkit.errors import AbkitError
from abkit.stats.aggregates import Moments, moments_from_sums
from abkit.stats.frequentist import ttest
from abkit.stats.noninferiority import margin_test
from abkit.stats.sequential import group_sequential_bounds, spending

# spotify/confidence tests/frequentist/test_ztest.py::TestWithNims (ZTest, interval_size=0.99):
# group "1" count 5000, sum 10021, sum_of_squares 25142; group "2" count 5000, sum 9892, sum_of_squares 24510.
# spotify's relative NIM 0.02 is the absolute null 0.02 · control mean (the control mean taken as known).
NIM_C = moments_from_sums(5000, 10021.0, 25142.0)
NIM_T = moments_from_sums(5000, 9892.0, 24510.0)
NIM_ABS = 0.02 * 10021.0 / 5000


def test_spotify_non_inferiority_increase_preferred() -> None:
    # spotify: difference -0.0258, ci_lower -0.0723 (3 decimals), ci_upper inf, p-value > 0.01
    r = margin_test(NIM_C, NIM_T, margin=NIM_ABS, alpha=0.01, use_t=False)
    assert float(r.estimate) == pytest.approx(-0.0258, abs=5e-4)
    assert float(r.ci_low) == pytest.approx(-0.0723, abs=5e-4)
    assert float(r.ci_high) == np.inf
    assert float(r.p_value) > 0.01 and not bool(r.passed)


def test_spotify_non_inferiority_decrease_preferred() -> None:
    # spotify: ci_lower -inf, ci_upper 0.0207 (3 decimals), p-value < 0.01
    r = margin_test(NIM_C, NIM_T, margin=NIM_ABS, alpha=0.01, use_t=False, higher_is_better=False)
    assert float(r.ci_high) == pytest.approx(0.0207, abs=5e-4)
    assert float(r.ci_low) == -np.inf
    assert float(r.p_value) < 0.01 and bool(r.passed)
    assert float(r.threshold) == pytest.approx(NIM_ABS)


def test_fixed_non_inferiority_matches_statsmodels_ztest() -> None:
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    rng = np.random.default_rng(7)
    x, y = rng.normal(1.0, 2.0, 400), rng.normal(0.9, 1.5, 600)
    c = moments_from_sums(len(x), x.sum(), (x * x).sum())
    t = moments_from_sums(len(y), y.sum(), (y * y).sum())
    cm = CompareMeans(DescrStatsW(y), DescrStatsW(x))
    # H1: μT − μC > −0.3 (non-inferiority, margin 0.3), unequal variances
    z, p = cm.ztest_ind(alternative="larger", usevar="unequal", value=-0.3)
    r = margin_test(c, t, margin=0.3, use_t=False)
    assert float(r.statistic) == pytest.approx(z, rel=1e-9)
    assert float(r.p_value) == pytest.approx(p, rel=1e-9)
    _, pt, _ = cm.ttest_ind(alternative="larger", usevar="unequal", value=-0.3)
    rt = margin_test(c, t, margin=0.3)
    assert float(rt.p_value) == pytest.approx(pt, rel=1e-9)
    # superiority with margin 0 is the one-sided Welch test
    sup = margin_test(c, t, hypothesis="superiority")
    assert float(sup.p_value) == pytest.approx(float(ttest(c, t, alternative="greater").p_value), rel=1e-12)


def test_relative_margin_uses_the_lift() -> None:
    r = margin_test(NIM_C, NIM_T, margin=0.02, relative=True, alpha=0.01, higher_is_better=False)
    lift = (9892.0 / 5000) / (10021.0 / 5000) - 1.0
    assert float(r.estimate) == pytest.approx(lift)
    assert float(r.ci_high) == pytest.approx(lift + sps.norm.ppf(0.99) * float(r.se))
    assert bool(r.passed)  # same verdict as spotify's relative NIM with "decrease" preferred
    assert not bool(margin_test(NIM_C, NIM_T, margin=0.02, relative=True, alpha=0.01).passed)


def test_spotify_sequential_non_inferiority_bound() -> None:
    # spotify/confidence tests/frequentist/test_ztest.py::TestSequentialOneSided: group "1" 1250 / 2510 / 6304,
    # group "2" 1250 / -2492 / 6163, final_expected_sample_size 1e4 (t = 0.25), NIM (0.01, "increase"),
    # interval_size 0.99: difference -4.001416, adjusted ci_lower -4.129515314002298 (3 decimals), ci_upper inf
    c, t = moments_from_sums(1250, 2510.0, 6304.0), moments_from_sums(1250, -2492.0, 6163.0)
    r = margin_test(c, t, margin=0.01 * 2.008, alpha=0.01, inference="group-sequential", fractions=[0.25], use_t=False)
    assert float(r.estimate) == pytest.approx(-4.001416, abs=1e-3)
    assert float(r.ci_low) == pytest.approx(-4.129515314002298, abs=1e-3)
    assert float(r.ci_high) == np.inf
    assert float(r.alpha_used) == pytest.approx(0.01 * 0.25**2)  # power spending, ρ = 2


def test_spotify_sequential_two_sided_bounds() -> None:
    # spotify/confidence tests/frequentist/test_ztest.py::TestSequentialTwoSided: 1250 / 2510 / 6304 against
    # 1250 / 2492 / 6163, final_expected_sample_size 1e4, interval_size 0.99: adjusted_lower -0.151,
    # adjusted_upper 0.121 (3 decimals)
    c, t = moments_from_sums(1250, 2510.0, 6304.0), moments_from_sums(1250, 2492.0, 6163.0)
    z = group_sequential_bounds([0.25], alpha=0.01, kind="power", rho=2).z[-1]
    se = np.sqrt(c.var / c.n + t.var / t.n)
    est = t.mean - c.mean
    assert float(est - z * se) == pytest.approx(-0.151, abs=1.5e-3)
    assert float(est + z * se) == pytest.approx(0.121, abs=1.5e-3)


def test_spotify_power_spending_adjusted_alphas_over_looks() -> None:
    # spotify/confidence tests/frequentist/test_bounds.py::test_seq_bounds_run_over: 250, 450, 630, 810 users
    # at four looks against 300 expected (so t = users / 810), two-sided α = 0.01, ρ = 2:
    # adjusted alphas 0.00095, 0.00241, 0.00410, 0.00636 (atol 1e-4)
    t = np.array([250, 450, 630, 810]) / 810
    b = group_sequential_bounds(t, alpha=0.01, kind="power", rho=2)
    assert b.nominal_p == pytest.approx([0.00095, 0.00241, 0.00410, 0.00636], abs=1e-4)
    assert b.alpha_spent == pytest.approx(0.01 * t**2)


def test_power_spending_family() -> None:
    assert spending([0.5, 1.0], 0.05, "power", rho=3) == pytest.approx([0.05 / 8, 0.05])
    with pytest.raises(AbkitError, match="rho"):
        spending([0.5], 0.05, "power", rho=0)
    with pytest.raises(AbkitError, match="sides"):
        group_sequential_bounds([0.5, 1.0], sides=3)


def test_power_spending_keeps_alpha_by_simulation() -> None:
    rng = np.random.default_rng(11)
    sims, looks = 20000, 8
    frac = np.arange(1, looks + 1) / looks
    s = np.cumsum(rng.normal(size=(sims, looks)), axis=1) / np.sqrt(np.arange(1, looks + 1))
    mc = 4 * np.sqrt(0.05 * 0.95 / sims)
    two = group_sequential_bounds(frac, kind="power", rho=2)
    assert np.mean(np.any(np.abs(s) >= two.z, axis=1)) == pytest.approx(0.05, abs=mc)
    one = group_sequential_bounds(frac, kind="power", rho=2, sides=1)
    assert np.mean(np.any(s >= one.z, axis=1)) == pytest.approx(0.05, abs=mc)
    assert np.all(one.z < two.z)


def _boundary_looks(
    rng: np.random.Generator, sims: int, looks: int, per_look: int, delta: float
) -> tuple[Moments, Moments]:
    """Cumulative arm means after each look with the true effect exactly at the margin (μT − μC = −δ)."""
    n = per_look * np.arange(1, looks + 1, dtype=np.float64)
    c_sum = np.cumsum(rng.normal(0.0, np.sqrt(per_look), (sims, looks)), axis=1)
    t_sum = np.cumsum(rng.normal(-delta * per_look, np.sqrt(per_look), (sims, looks)), axis=1)
    ones = np.ones((sims, looks))
    return Moments(c_sum / n, ones, n * ones), Moments(t_sum / n, ones, n * ones)


def test_non_inferiority_type_one_error_by_simulation() -> None:
    rng = np.random.default_rng(5)
    sims, looks, alpha, delta = 4000, 20, 0.05, 0.1
    c, t = _boundary_looks(rng, sims, looks, 100, delta)
    mc = 3 * np.sqrt(alpha * (1 - alpha) / sims)
    fixed = margin_test(c, t, margin=delta, alpha=alpha, use_t=False)
    assert np.mean(fixed.passed[:, -1]) == pytest.approx(alpha, abs=mc)  # exact at the boundary
    assert np.mean(np.any(fixed.passed, axis=1)) > alpha + mc  # peeking at a fixed test inflates the error
    seq = margin_test(c, t, margin=delta, alpha=alpha, inference="sequential", sequential_tuning=1000)
    assert np.mean(np.any(seq.passed, axis=1)) <= alpha + mc  # always valid: every look may be read
    passed = np.zeros(sims, dtype=bool)
    four = [4, 9, 14, 19]  # four planned looks
    for k, look in enumerate(four):
        cl, tl = Moments(*(x[:, look] for x in c)), Moments(*(x[:, look] for x in t))
        frac = (np.array(four[: k + 1]) + 1) / 20
        passed |= margin_test(
            cl, tl, margin=delta, alpha=alpha, inference="group-sequential", fractions=frac, use_t=False
        ).passed
    assert np.mean(passed) == pytest.approx(alpha, abs=mc)


def test_non_inferior_challenger_passes_and_superiority_needs_more() -> None:
    rng = np.random.default_rng(2)
    c, t = _boundary_looks(rng, 2000, 1, 4000, -0.0)  # equal means, margin 0.1: non-inferior with high power
    ni = margin_test(c, t, margin=0.1)
    sup = margin_test(c, t, margin=0.0, hypothesis="superiority")
    assert np.mean(ni.passed) > 0.99
    assert np.mean(sup.passed) == pytest.approx(0.05, abs=0.02)


def test_one_sided_sequential_bound_is_tighter_than_the_two_sided_sequence() -> None:
    from abkit.stats.sequential import confidence_sequence

    c, t = moments_from_sums(2000, 100.0, 2100.0), moments_from_sums(2000, 90.0, 2050.0)
    r = margin_test(c, t, margin=0.1, inference="sequential")
    se = float(r.se)
    cs = confidence_sequence(float(r.estimate), se, 4000)
    fixed = margin_test(c, t, margin=0.1, use_t=False)
    assert float(cs.ci_low) < float(r.ci_low) < float(fixed.ci_low)
    # p below α exactly when the bound clears the threshold
    assert (float(r.p_value) < 0.05) == (float(r.ci_low) > -0.1)


def test_bad_input_names_the_field() -> None:
    with pytest.raises(AbkitError, match="margin"):
        margin_test(NIM_C, NIM_T, margin=-0.1)
    with pytest.raises(AbkitError, match="hypothesis"):
        margin_test(NIM_C, NIM_T, hypothesis="equivalence")
    with pytest.raises(AbkitError, match="fractions"):
        margin_test(NIM_C, NIM_T, inference="group-sequential")
    with pytest.raises(AbkitError, match="spending"):
        margin_test(NIM_C, NIM_T, inference="group-sequential", fractions=[1.0], spending="linear")
