"""Parity with published numbers of GrowthBook's gbstats and tea-tasting.

Numbers transcribed from the engines' public test suites (sources named per test). Tolerances are the
engines' own: gbstats rounds to 5 decimals (frequentist/ and bayesian/ tests) or 9 (test_gbstats.py);
tea-tasting compares with relative 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest

from abkit.stats import (
    ArmStats,
    CupedStats,
    Moments,
    adjust,
    bayes_test,
    bh_threshold,
    confidence_sequence,
    cuped_ttest,
    mde,
    moments_from_sums,
    power,
    proportion_moments,
    proportions_exact,
    proportions_ztest,
    sample_size,
    srm_test,
    ttest,
)
from abkit.stats.frequentist import chi2_contingency_pvalue, relative_variance

GB5 = dict(abs=1e-5)  # gbstats frequentist/ and bayesian/: 5 decimals
GB9 = dict(abs=1e-9)  # gbstats test_gbstats.py: 9 decimals
TT = dict(rel=1e-6)  # tea-tasting: pytest.approx(rel=1e-6)


def approx5(x: float) -> object:
    return pytest.approx(x, abs=5e-6)


# ---------------------------------------------------------------- gbstats
# growthbook/growthbook packages/stats/tests/frequentist/test_tests.py::TestTwoSidedTTest
GB1_A = moments_from_sums(3407, 1396.87, 52377.9767)
GB1_B = moments_from_sums(3461, 2422.7, 134698.29)


def test_gb1_welch_relative() -> None:
    r = ttest(GB1_A, GB1_B, relative=True, relative_ci="delta")
    assert float(r.estimate) == approx5(0.70732)
    assert (float(r.ci_low), float(r.ci_high)) == (approx5(-0.03526), approx5(1.44989))
    assert float(r.se) == approx5(0.37879)
    assert float(r.p_value) == approx5(0.06191)


def test_gb1_welch_absolute() -> None:
    r = ttest(GB1_A, GB1_B)
    assert float(r.estimate) == approx5(0.29)
    assert (float(r.ci_low), float(r.ci_high)) == (approx5(0.04538), approx5(0.53462))
    assert float(r.se) == approx5(0.12478)
    assert float(r.p_value) == approx5(0.02016)


def test_gb2_proportions_through_ttest() -> None:
    # frequentist/test_tests.py::test_two_sided_ttest_binom: Prop(14/28) vs Prop(16/30), relative
    r = ttest(proportion_moments(14, 28), proportion_moments(16, 30), relative=True, relative_ci="delta")
    assert float(r.estimate) == approx5(0.06667)
    assert (float(r.ci_low), float(r.ci_high)) == (approx5(-0.47767), approx5(0.61101))
    assert float(r.se) == approx5(0.2717)
    assert float(r.p_value) == approx5(0.80707)


def test_gb3_bayesian_binomial_flat_prior() -> None:
    # bayesian/test_tests.py: Prop(49/100) vs Prop(51/100)
    r = bayes_test(proportion_moments(49, 100), proportion_moments(51, 100))
    assert float(r.estimate) == approx5(0.04082)
    assert (float(r.ci_low), float(r.ci_high)) == (approx5(-0.24779), approx5(0.32943))
    assert float(r.sd) == approx5(0.14725)
    assert float(r.chance_to_win) == approx5(0.60918)
    assert (float(r.risk_control), float(r.risk_treatment)) == (approx5(0.0814), approx5(0.04058))


GB3_NA, GB3_NB = moments_from_sums(10, 100, 1002.25), moments_from_sums(10, 105, 1111.5)


def test_gb3_bayesian_normal_flat_prior() -> None:
    r = bayes_test(GB3_NA, GB3_NB)
    assert float(r.estimate) == approx5(0.05)
    assert (float(r.ci_low), float(r.ci_high)) == (approx5(-0.02), approx5(0.12))
    assert float(r.sd) == approx5(0.03572)
    assert float(r.chance_to_win) == approx5(0.91923)
    assert (float(r.risk_control), float(r.risk_treatment)) == (approx5(0.05131), approx5(0.00131))


def test_gb3_bayesian_normal_proper_prior() -> None:
    r = bayes_test(GB3_NA, GB3_NB, prior_mean=0.1, prior_var=0.1)
    assert float(r.estimate) == approx5(0.05063)
    assert (float(r.ci_low), float(r.ci_high)) == (approx5(-0.01893), approx5(0.12019))
    assert float(r.sd) == approx5(0.03549)
    assert float(r.chance_to_win) == approx5(0.92315)
    assert (float(r.risk_control), float(r.risk_treatment)) == (approx5(0.05186), approx5(0.00123))


# test_gbstats.py::TestAnalyzeMetricDfBayesian and test_analyze_metric_df_sequential share these arms
GB3_A, GB3_B = moments_from_sums(100, 270, 848.79), moments_from_sums(120, 300, 869)


def test_gb3_analyze_metric_df_bayesian() -> None:
    r = bayes_test(GB3_A, GB3_B)
    assert float(r.chance_to_win) == pytest.approx(0.071834168, **GB9)
    assert float(r.estimate) == pytest.approx(-0.074074074, **GB9)
    assert float(r.risk_treatment) == pytest.approx(0.075691131, **GB9)
    inv = bayes_test(GB3_A, GB3_B, inverse=True)
    assert float(inv.risk_treatment) == pytest.approx(0.001617057, **GB9)
    assert float(inv.chance_to_win) == pytest.approx(1 - 0.071834168, **GB9)


def test_gb4_sequential_tuning_600() -> None:
    # test_gbstats.py::test_analyze_metric_df_sequential
    fixed = ttest(GB3_A, GB3_B, relative=True, relative_ci="delta")
    assert float(fixed.p_value) == pytest.approx(0.145219005, **GB9)
    r = confidence_sequence(fixed.estimate, fixed.se, 220, tuning=600)
    assert float(r.estimate) == pytest.approx(-0.074074074, **GB9)
    assert float(r.ci_low) == pytest.approx(-0.233322085, **GB9)
    assert float(r.p_value) == pytest.approx(0.892332229, **GB9)


def test_gb4_sequential_proportions_default_tuning() -> None:
    # frequentist/test_tests.py: Prop(1396/3000) vs Prop(2422/3461), tuning 5000
    f = ttest(proportion_moments(1396, 3000), proportion_moments(2422, 3461), relative=True, relative_ci="delta")
    r = confidence_sequence(f.estimate, f.se, 3000 + 3461, tuning=5000)
    assert float(r.estimate) == approx5(0.50386)
    assert (float(r.ci_low), float(r.ci_high)) == (approx5(0.40098), approx5(0.60675))
    assert float(r.p_value) == approx5(0.0)


def test_gb4_sequential_means_tuning_1000() -> None:
    a, b = moments_from_sums(3000, 1396.87, 52377.9767), moments_from_sums(3461, 2422.7, 134698.29)
    f = ttest(a, b, relative=True, relative_ci="delta")
    r = confidence_sequence(f.estimate, f.se, 3000 + 3461, tuning=1000)
    assert (float(r.ci_low), float(r.ci_high)) == (approx5(-0.55844), approx5(1.56516))
    assert float(r.p_value) == approx5(1.0)


# test_gbstats.py RATIO_STATISTICS_DF
GB5_A = ArmStats(n=100, m_sum=270, m_ss=848.79, d_sum=510, d_ss=810, md_sum=-900)
GB5_B = ArmStats(n=120, m_sum=300, m_ss=869, d_sum=500, d_ss=800, md_sum=-905)


def test_gb5_ratio_delta_method() -> None:
    a, b = GB5_A.moments(), GB5_B.moments()
    assert (float(a.mean), float(b.mean)) == (pytest.approx(0.529411765, **GB9), pytest.approx(0.6, **GB9))
    f = ttest(a, b, relative=True, relative_ci="delta")
    assert float(f.estimate) == pytest.approx(0.133333333, **GB9)
    assert float(f.p_value) == pytest.approx(0.610663339, **GB9)
    bay = bayes_test(a, b)
    assert float(bay.chance_to_win) == pytest.approx(0.694926359, **GB9)
    assert float(bay.risk_treatment) == pytest.approx(0.050934045, **GB9)


def test_gb6_cuped() -> None:
    # test_gbstats.py::test_analyze_metric_df_ra
    c = CupedStats.for_means(3001, 300, 600, 210, 415, -20)
    t = CupedStats.for_means(3000, 222, 555, 120, 405, -10)
    from abkit.stats.frequentist import cuped_adjust

    assert float(cuped_adjust(c, t)[2]) == pytest.approx(-0.073211940, **GB9)
    assert (float(c.y.ratio), float(t.y.ratio)) == (pytest.approx(0.099966678, **GB9), pytest.approx(0.074, **GB9))
    r = cuped_ttest(c, t, relative=True, relative_ci="delta")
    assert float(r.estimate) == pytest.approx(-0.281707154, **GB9)
    assert float(r.p_value) == pytest.approx(0.003732549, **GB9)


def test_gb7_srm() -> None:
    # historic tests/test_gbstats.py::test_srm (removed in commit 01387ac8d6)
    assert srm_test([1000, 1200], [0.5, 0.5]).p_value == pytest.approx(0.000020079, **GB9)


GB8 = dict(mean=10, var=3909.9997749994377, n_total=400_000, n_arms=3)


def test_gb8_power_and_mde() -> None:
    # packages/shared/test/power.test.ts
    assert power(0.05, **GB8) == approx5(0.52144)
    assert power(0.05, sequential_tuning=5000, **GB8) == approx5(0.20596)
    assert mde(0.8, **GB8) == approx5(0.07027)
    assert mde(0.8, sequential_tuning=5000, **GB8) == approx5(0.12821)


def test_gb8_frequentist_variance() -> None:
    a, b = Moments(7.0, 2.0, 4.0), Moments(5.0, 0.5, 15.0)
    assert float(a.var / a.n + b.var / b.n) == approx5(0.53333)
    assert float(relative_variance(a, b)) == approx5(0.00589)


def test_gb9_multiple_testing() -> None:
    # packages/shared/test/experiments.test.ts
    holm = adjust([0.01, 0.04, 0.03, 0.005, 0.55, 0.6], "holm").p_adjusted
    assert holm[[3, 0, 2, 1, 4, 5]] == pytest.approx([0.03, 0.05, 0.12, 0.12, 1, 1])
    bh = adjust([0.898, 0.138, 0.007, 0.964, 0.538, 0.006, 0.138], "bh").p_adjusted
    assert bh[[3, 0, 4, 1, 6, 2, 5]] == pytest.approx([0.964, 0.964, 0.7532, 0.2415, 0.2415, 0.0245, 0.0245])


# ---------------------------------------------------------------- tea-tasting
# Per-arm aggregates of make_users_data(n_users=100, covariates=True, rng=42), ddof = 1, as rebuilt for
# tea-tasting's tests (e10v/tea-tasting tests/); columns: orders (o), sessions (s), their covariates (oc, sc).
TT_ARMS = {
    0: dict(
        n=53,
        sum=dict(s=105.0, o=30.0, sc=102.0, oc=28.0),
        var=dict(s=0.9804063860667634, o=0.7888243831640056, sc=3.5326560232220605, oc=1.446298984034833),
        cov={
            ("s", "sc"): 1.113933236574746,
            ("o", "s"): 0.3955007256894052,
            ("o", "sc"): 0.6973875181422351,
            ("o", "oc"): 0.7721335268505091,
            ("oc", "s"): 0.3947750362844705,
            ("oc", "sc"): 1.2329462989840345,
        },
    ),
    1: dict(
        n=47,
        sum=dict(s=89.0, o=18.0, sc=92.0, oc=15.0),
        var=dict(s=0.7927844588344124, o=0.5023126734505089, sc=2.3894542090656805, oc=0.5698427382053656),
        cov={
            ("s", "sc"): 0.8432007400555042,
            ("o", "s"): 0.1503237742830711,
            ("o", "sc"): 0.1470860314523588,
            ("o", "oc"): 0.3751156336725256,
            ("oc", "s"): 0.16512488436632747,
            ("oc", "sc"): 0.2747456059204441,
        },
    ),
}


def _ss(arm: dict, a: str, b: str) -> float:
    """Σ a·b rebuilt from the covariance (ddof = 1) and the sums."""
    n = arm["n"]
    c = arm["var"][a] if a == b else arm["cov"].get((a, b), arm["cov"].get((b, a)))
    return c * (n - 1) + arm["sum"][a] * arm["sum"][b] / n


def _ratio(arm: dict, m: str, d: str) -> ArmStats:
    return ArmStats(arm["n"], arm["sum"][m], _ss(arm, m, m), arm["sum"][d], _ss(arm, d, d), _ss(arm, m, d))


def _mean(arm: dict, m: str) -> ArmStats:
    return ArmStats.mean(arm["n"], arm["sum"][m], _ss(arm, m, m))


def test_tt1_proportion_ztest() -> None:
    # tests/metrics/test_proportion.py: 19/53 vs 13/47
    r = proportions_ztest(19, 53, 13, 47)
    assert float(r.control) == pytest.approx(0.3584905660377358, **TT)
    assert float(r.treatment) == pytest.approx(0.2765957446808511, **TT)
    assert float(r.p_value) == pytest.approx(0.5083165530405196, **TT)
    assert (float(r.ci_low), float(r.ci_high)) == (
        pytest.approx(-0.2851524037206986, **TT),
        pytest.approx(0.12136276100692911, **TT),
    )
    rel = proportions_ztest(19, 53, 13, 47, relative=True)
    assert (float(rel.ci_low), float(rel.ci_high)) == (
        pytest.approx(-0.5884358933441386, **TT),
        pytest.approx(0.44643204227351263, **TT),
    )
    un = proportions_ztest(19, 53, 13, 47, pooled=False)
    assert float(un.p_value) == pytest.approx(0.5049066155125612, **TT)
    assert (float(un.ci_low), float(un.ci_high)) == (
        pytest.approx(-0.28368859581157896, **TT),
        pytest.approx(0.11989895309780946, **TT),
    )
    nc = proportions_ztest(19, 53, 13, 47, correction=False)
    assert float(nc.p_value) == pytest.approx(0.3809096823118986, **TT)
    assert (float(nc.ci_low), float(nc.ci_high)) == (
        pytest.approx(-0.26508014358420723, **TT),
        pytest.approx(0.10129050087043773, **TT),
    )


def test_tt1_exact_and_chi_square() -> None:
    assert proportions_exact(19, 53, 13, 47, method="fisher") == pytest.approx(0.3999948918153569, **TT)
    assert proportions_exact(19, 53, 13, 47, method="barnard") == pytest.approx(0.530637102766593, **TT)
    assert proportions_exact(19, 53, 13, 47, method="boschloo") == pytest.approx(0.4000169399363184, **TT)
    table = [[19, 34], [13, 34]]
    assert chi2_contingency_pvalue(table) == pytest.approx(0.5083165530405195, **TT)
    assert chi2_contingency_pvalue(table, lambda_="log-likelihood") == pytest.approx(0.5076294534617167, **TT)
    assert chi2_contingency_pvalue(table, lambda_="log-likelihood", correction=False) == pytest.approx(
        0.37976268998844287, **TT
    )


def test_tt2_sample_ratio() -> None:
    # tests/test_sample_ratio*: 53 vs 47, ratio 1
    assert srm_test([53, 47], [0.5, 0.5], method="binom").p_value == pytest.approx(0.6172994135892521, **TT)
    assert srm_test([53, 47], [0.5, 0.5], method="norm", correction=True).p_value == pytest.approx(
        0.6170750774519738, **TT
    )
    assert srm_test([53, 47], [0.5, 0.5], method="norm").p_value == pytest.approx(0.5485062355001472, **TT)
    assert srm_test([53, 47], [0.5, 0.5]).p_value == pytest.approx(0.5485062355001472, **TT)  # χ², 1 df


def test_tt3_welch_mean_of_orders() -> None:
    # tests/metrics/test_mean.py::test_ratio_of_means_analyze_basic
    c, t = _mean(TT_ARMS[0], "o").moments(), _mean(TT_ARMS[1], "o").moments()
    r = ttest(c, t)
    assert (float(r.control), float(r.treatment)) == (
        pytest.approx(0.5660377358490566, **TT),
        pytest.approx(0.3829787234042553, **TT),
    )
    assert float(r.estimate) == pytest.approx(-0.18305901244480127, **TT)
    assert (float(r.ci_low), float(r.ci_high)) == (
        pytest.approx(-0.5004359360326984, **TT),
        pytest.approx(0.13431791114309583, **TT),
    )
    assert float(r.p_value) == pytest.approx(0.2551230546709908, **TT)
    assert float(r.statistic) == pytest.approx(-1.1447678040118034, **TT)
    rel = ttest(c, t, relative=True, relative_ci="log")
    assert float(rel.estimate) == pytest.approx(-0.32340425531914896, **TT)
    assert (float(rel.ci_low), float(rel.ci_high)) == (
        pytest.approx(-0.6593351111187646, **TT),
        pytest.approx(0.34378920945924096, **TT),
    )


def test_tt4_ratio_student_greater() -> None:
    # tests/metrics/test_mean.py::test_ratio_of_means_analyze_ratio_greater_equal_var
    c, t = _ratio(TT_ARMS[0], "o", "s").moments(), _ratio(TT_ARMS[1], "o", "s").moments()
    r = ttest(c, t, equal_var=True, alternative="greater")
    assert (float(r.control), float(r.treatment)) == (
        pytest.approx(0.2857142857142857, **TT),
        pytest.approx(0.20224719101123595, **TT),
    )
    assert float(r.estimate) == pytest.approx(-0.08346709470304975, **TT)
    assert float(r.ci_low) == pytest.approx(-0.21187246704082818, **TT)
    assert float(r.ci_high) == np.inf
    assert float(r.p_value) == pytest.approx(0.8584716347525132, **TT)
    assert float(r.statistic) == pytest.approx(-1.0794048813446926, **TT)
    rel = ttest(c, t, equal_var=True, alternative="greater", relative=True, relative_ci="log")
    assert float(rel.ci_low) == pytest.approx(-0.5852384654309937, **TT)


def _cuped(arm: dict) -> CupedStats:
    return CupedStats(
        _ratio(arm, "o", "s"),
        _ratio(arm, "oc", "sc"),
        _ss(arm, "o", "oc"),
        _ss(arm, "o", "sc"),
        _ss(arm, "oc", "s"),
        _ss(arm, "s", "sc"),
    )


def test_tt5_cuped_ratio_z_less() -> None:
    # tests/metrics/test_mean.py::test_ratio_of_means_analyze_ratio_less_use_norm
    c, t = _cuped(TT_ARMS[0]), _cuped(TT_ARMS[1])
    r = cuped_ttest(c, t, alternative="less", use_t=False)
    assert (float(r.control), float(r.treatment)) == (
        pytest.approx(0.25572348175909004, **TT),
        pytest.approx(0.23549786496156158, **TT),
    )
    assert float(r.estimate) == pytest.approx(-0.020225616797528462, **TT)
    assert float(r.ci_high) == pytest.approx(0.07287939184944564, **TT)
    assert float(r.p_value) == pytest.approx(0.3604265417728255, **TT)
    assert float(r.statistic) == pytest.approx(-0.3573188986307722, **TT)
    rel = cuped_ttest(c, t, alternative="less", use_t=False, relative=True, relative_ci="log")
    assert float(rel.ci_high) == pytest.approx(0.34578466493619153, **TT)


# tests/metrics/test_mean.py::test_ratio_of_means_solve_power_*: n = 100, Σorders 47, Σorders² 87
TT6 = dict(mean=0.47, var=0.6556565656565657, relative=False, use_t=True)


def test_tt6_power() -> None:
    assert moments_from_sums(100, 47, 87).var == pytest.approx(0.6556565656565657, **TT)
    assert power(0.1 * 0.47, n_total=10_000, alternative="greater", **TT6) == pytest.approx(0.895653144822902, **TT)
    assert sample_size(0.05, 0.8, **TT6) == 8236
    two = mde(0.8, n_total=10_000, **TT6)
    assert two == pytest.approx(0.04537464375458489, **TT)
    assert two / 0.47 == pytest.approx(0.09654179522252104, **TT)
    less = mde(0.8, n_total=10_000, alternative="less", **TT6)
    assert less == pytest.approx(-0.04027000268908317, **TT)
    assert less / 0.47 == pytest.approx(-0.08568085678528335, **TT)


def test_tt7_multiplicity() -> None:
    # tests/test_multiplicity.py: (0,1) m1 .005, m2 .06; (0,2) m2 .007, m3 .04; (0,3) m1 .01, m3 .03
    p = [0.005, 0.06, 0.007, 0.04, 0.01, 0.03]
    assert adjust(p, "bh").p_adjusted == pytest.approx([0.02, 0.06, 0.02, 0.048, 0.02, 0.045], **TT)
    assert bh_threshold(p) == pytest.approx(0.0416666666666667, **TT)
    assert adjust(p, "by").p_adjusted == pytest.approx([0.049, 0.147, 0.049, 0.1176, 0.049, 0.11025], **TT)
    fwer = [
        0.0296274906437343,
        0.0600000000000001,
        0.0345134180118071,
        0.0600000000000001,
        0.0394039900000001,
        0.0600000000000001,
    ]
    assert adjust(p, "hochberg-sidak").p_adjusted == pytest.approx(fwer, **TT)
