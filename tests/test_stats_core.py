"""abkit.stats against scipy/statsmodels, properties (symmetry, scale invariance, CI ∋ estimate) and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from abkit.errors import AbkitError
from abkit.stats import (
    ArmStats,
    Moments,
    adjust,
    bayes_test,
    beta_chance_to_beat,
    bh_threshold,
    check_weights,
    confidence_sequence,
    config_context,
    group_sequential_bounds,
    mcnemar_exact,
    moments_from_sums,
    msprt_p_values,
    paired_difference,
    power,
    proportions_exact,
    proportions_ztest,
    quantile_rank_interval,
    sample_size,
    srm_test,
    ttest,
)
from abkit.stats.config import UnknownOptionError, get_config


def _sample_moments(x: np.ndarray) -> Moments:
    return moments_from_sums(x.size, x.sum(), (x * x).sum())


@pytest.fixture
def samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(1.0, 2.0, 300), rng.normal(1.3, 3.0, 250)


# ------------------------------------------------------------------ cross-checks
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_welch_matches_scipy(samples: tuple[np.ndarray, np.ndarray], alternative: str) -> None:
    a, b = samples
    r = ttest(_sample_moments(a), _sample_moments(b), alternative=alternative)
    ref = sps.ttest_ind(b, a, equal_var=False, alternative=alternative)
    assert float(r.p_value) == pytest.approx(ref.pvalue, rel=1e-9)
    assert float(r.statistic) == pytest.approx(ref.statistic, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (float(r.ci_low), float(r.ci_high)) == (pytest.approx(ci.low, rel=1e-9), pytest.approx(ci.high, rel=1e-9))


def test_student_matches_scipy(samples: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = samples
    r = ttest(_sample_moments(a), _sample_moments(b), equal_var=True)
    assert float(r.p_value) == pytest.approx(sps.ttest_ind(b, a, equal_var=True).pvalue, rel=1e-9)


@pytest.mark.parametrize("xc,nc,xt,nt", [(19, 53, 13, 47), (120, 1000, 150, 1000), (3, 20, 9, 22)])
def test_proportions_match_statsmodels(xc: int, nc: int, xt: int, nt: int) -> None:
    from statsmodels.stats.proportion import proportions_ztest as sm_z

    r = proportions_ztest(xc, nc, xt, nt, correction=False)
    _, p = sm_z([xt, xc], [nt, nc])
    assert float(r.p_value) == pytest.approx(p, rel=1e-9)
    assert proportions_exact(xc, nc, xt, nt) == pytest.approx(
        sps.fisher_exact([[xt, nt - xt], [xc, nc - xc]]).pvalue, rel=1e-12
    )


@pytest.mark.parametrize("b,c", [(10, 3), (0, 0), (7, 7), (1, 12)])
def test_mcnemar_matches_statsmodels(b: int, c: int) -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    assert mcnemar_exact(b, c).p_value == pytest.approx(mcnemar([[20, b], [c, 30]], exact=True).pvalue, rel=1e-12)


@pytest.mark.parametrize(
    "ours,theirs",
    [
        ("holm", "holm"),
        ("hochberg", "simes-hochberg"),
        ("bh", "fdr_bh"),
        ("by", "fdr_by"),
        ("bonferroni", "bonferroni"),
        ("sidak", "sidak"),
        ("holm-sidak", "holm-sidak"),
    ],
)
def test_multiple_matches_statsmodels(ours: str, theirs: str) -> None:
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(3).uniform(0, 0.2, 12)
    assert adjust(p, ours).p_adjusted == pytest.approx(multipletests(p, method=theirs)[1], rel=1e-10)


def test_paired_difference_is_paired_t_without_clustering() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, 80), rng.normal(0.2, 1, 80)
    d = y - x
    r = paired_difference(ArmStats(80, d.sum(), (d * d).sum(), 80, 80, d.sum()))
    assert float(r.p_value) == pytest.approx(sps.ttest_rel(y, x).pvalue, rel=1e-9)


def test_beta_chance_to_beat_matches_closed_form() -> None:
    from scipy.special import betaln

    def exact(xa: int, na: int, xb: int, nb: int) -> float:  # Evan Miller's closed form for integer parameters
        aa, ba, ab, bb = 1 + xa, 1 + na - xa, 1 + xb, 1 + nb - xb
        return float(
            sum(
                np.exp(betaln(aa + i, ba + bb) - np.log(bb + i) - betaln(1 + i, bb) - betaln(aa, ba)) for i in range(ab)
            )
        )

    for args in [(49, 100, 51, 100), (3, 10, 7, 12), (400, 1000, 430, 1000), (0, 5, 0, 5)]:
        assert beta_chance_to_beat(*args) == pytest.approx(exact(*args), abs=1e-9)
    # large counts: the normal approximation of the difference
    p = beta_chance_to_beat(40_000, 100_000, 40_300, 100_000)
    z = 0.003 / np.sqrt(2 * 0.4 * 0.6 / 100_000)
    assert p == pytest.approx(sps.norm.cdf(z), abs=2e-3)


# ------------------------------------------------------------------ properties
def test_swapping_arms_mirrors_the_result(samples: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = map(_sample_moments, samples)
    ab, ba = ttest(a, b), ttest(b, a)
    assert float(ab.estimate) == pytest.approx(-float(ba.estimate))
    assert float(ab.p_value) == pytest.approx(float(ba.p_value))
    assert (float(ab.ci_low), float(ab.ci_high)) == (
        pytest.approx(-float(ba.ci_high)),
        pytest.approx(-float(ba.ci_low)),
    )
    assert float(bayes_test(a, b, relative=False).chance_to_win) == pytest.approx(
        1 - float(bayes_test(b, a, relative=False).chance_to_win)
    )


def test_scale_invariance(samples: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = samples
    r1 = ttest(_sample_moments(a), _sample_moments(b), relative=True)
    r2 = ttest(_sample_moments(a * 1000), _sample_moments(b * 1000), relative=True)
    assert float(r1.p_value) == pytest.approx(float(r2.p_value), rel=1e-9)
    assert float(r1.estimate) == pytest.approx(float(r2.estimate), rel=1e-9)
    s1 = ArmStats(50, 30.0, 40.0, 100.0, 250.0, 70.0)
    s2 = ArmStats(50, 30.0 * 7, 40.0 * 49, 100.0, 250.0, 70.0 * 7)
    assert float(s2.moments().var) == pytest.approx(49 * float(s1.moments().var))


def test_intervals_contain_estimates() -> None:
    rng = np.random.default_rng(11)
    n = rng.integers(20, 500, (50, 2)).astype(float)
    m = Moments(rng.normal(1, 0.2, (50, 2)), rng.uniform(0.1, 3, (50, 2)), n)
    c, t = Moments(m.mean[:, 0], m.var[:, 0], n[:, 0]), Moments(m.mean[:, 1], m.var[:, 1], n[:, 1])
    for rel in (False, True):
        r = ttest(c, t, relative=rel)
        assert np.all((r.ci_low <= r.estimate) & (r.estimate <= r.ci_high))
        s = confidence_sequence(r.estimate, r.se, n.sum(1))
        assert np.all((s.ci_low <= r.ci_low) & (s.ci_high >= r.ci_high))  # always-valid ⊇ fixed


def test_ratio_of_constant_denominator_equals_mean() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(5, 1, 200)
    ratio = ArmStats(200, x.sum(), (x * x).sum(), 200.0, 200.0, x.sum()).moments()
    mean = _sample_moments(x)
    assert float(ratio.mean) == pytest.approx(float(mean.mean))
    assert float(ratio.var) == pytest.approx(float(mean.var))


def test_delta_method_matches_per_user_simulation() -> None:
    """The delta-method SE of Σm/Σd matches the spread of the ratio over many clustered samples."""
    rng = np.random.default_rng(5)
    sims, users = 4000, 400
    d = 1 + rng.poisson(4, (sims, users)).astype(float)
    m = rng.binomial(d.astype(int), rng.beta(4, 2, (sims, users))).astype(float)
    st = ArmStats(np.full(sims, users), m.sum(1), (m * m).sum(1), d.sum(1), (d * d).sum(1), (m * d).sum(1))
    mo = st.moments()
    assert float(np.mean(np.sqrt(mo.var / mo.n))) == pytest.approx(float(np.std(mo.mean)), rel=0.05)


def test_arm_stats_pool_with_add() -> None:
    a = ArmStats(3, 3.0, 5.0, 6.0, 14.0, 8.0)
    b = ArmStats(2, 1.0, 1.0, 4.0, 8.0, 2.0)
    s = a + b
    assert (float(s.n), float(s.m_sum), float(s.md_sum)) == (5.0, 4.0, 10.0)
    assert float(s[()].ratio) == pytest.approx(0.4)


def test_msprt_is_monotone_and_valid() -> None:
    rng = np.random.default_rng(0)
    sims, looks = 2000, 20
    z = np.cumsum(rng.normal(size=(sims, looks)), axis=1)  # score process under H0
    k = np.arange(1, looks + 1)
    p = msprt_p_values(z / k, 1 / np.sqrt(k), tau2=0.5)
    assert np.all(np.diff(p, axis=1) <= 0)
    assert np.mean(p[:, -1] < 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / sims)


def test_group_sequential_bounds_published_values() -> None:
    # Lan–DeMets spending, 5 equally spaced looks, two-sided α = 0.05 (Jennison & Turnbull 2000, table 7.6 /
    # R ldbounds): O'Brien–Fleming type 4.877, 3.357, 2.680, 2.290, 2.031; Pocock type 2.438 … 2.386
    t = [0.2, 0.4, 0.6, 0.8, 1.0]
    assert group_sequential_bounds(t, kind="obrien-fleming").z == pytest.approx(
        [4.877, 3.357, 2.680, 2.290, 2.031], abs=2e-3
    )
    assert group_sequential_bounds(t, kind="pocock").z == pytest.approx([2.438, 2.427, 2.410, 2.397, 2.386], abs=2e-3)


def test_group_sequential_bounds_keep_alpha_by_simulation() -> None:
    rng = np.random.default_rng(4)
    looks = 10
    b = group_sequential_bounds(np.arange(1, looks + 1) / looks, kind="pocock")
    s = np.cumsum(rng.normal(size=(20000, looks)), axis=1) / np.sqrt(np.arange(1, looks + 1))
    fpr = np.mean(np.any(np.abs(s) >= b.z, axis=1))
    assert fpr == pytest.approx(0.05, abs=4 * np.sqrt(0.05 * 0.95 / 20000))


def test_quantile_rank_interval_without_clustering_is_binomial() -> None:
    # one request per user: F̂ is a proportion, σ² = p(1 − p)/n
    n, k = 10_000, 9_500
    lo, hi, se = quantile_rank_interval(0.95, ArmStats(n, k, k, n, n, k))
    assert float(se) == pytest.approx(np.sqrt(0.95 * 0.05 / (n - 1) * (n - 1) / n), rel=1e-3)
    assert float(hi - lo) == pytest.approx(2 * 1.959964 * float(se), rel=1e-5)


def test_config_context_and_resolution() -> None:
    assert get_config("alpha") == 0.05
    with config_context(alpha=0.1, srm_alpha=0.01):
        assert get_config("alpha") == 0.1
        assert srm_test([530, 470], [0.5, 0.5]).status == "ok"
    assert get_config("alpha") == 0.05
    with pytest.raises(UnknownOptionError, match="alpah"):
        with config_context(alpah=0.1):
            pass


# ------------------------------------------------------------------ bad input
def test_negative_counts_are_refused() -> None:
    with pytest.raises(AbkitError, match="n has negative"):
        ArmStats(-1, 1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(AbkitError, match="counts"):
        srm_test([10, -1], [0.5, 0.5])
    with pytest.raises(AbkitError, match="successes"):
        proportions_ztest(5, 3, 1, 4)


def test_tiny_negative_variance_is_clipped_and_large_one_refused() -> None:
    x = np.full(5, 0.1)
    st = ArmStats.mean(5, x.sum(), (x * x).sum() * (1 - 1e-15))  # rounding makes Σx² − (Σx)²/n slightly < 0
    assert float(st.moments().var) == 0.0
    with pytest.raises(AbkitError, match="negative"):
        ArmStats.mean(5, 10.0, 1.0).moments()


def test_zero_users_give_nan_not_a_crash_and_weights_are_checked() -> None:
    r = ttest(Moments(np.nan, np.nan, 0.0), moments_from_sums(10, 5, 5))
    assert np.isnan(r.p_value)
    assert srm_test([0, 0], [0.5, 0.5]).status == "insufficient"
    with pytest.raises(AbkitError, match="sum to"):
        check_weights([0.5, 0.6])
    with pytest.raises(AbkitError, match="one weight per arm"):
        srm_test([10, 10, 10], [0.5, 0.5])
    with pytest.raises(AbkitError, match="NaN"):
        adjust([0.1, np.nan])


def test_srm_practical_guard_and_many_arms() -> None:
    r = srm_test([1000, 1000, 1000], [0.2, 0.4, 0.4])
    assert r.status == "mismatch" and r.df == 2
    assert srm_test([2000, 4000, 4000], [0.2, 0.4, 0.4]).status == "ok"
    guard = srm_test([600, 400], [0.5, 0.5], alpha=1e-12, min_units=1000)
    assert guard.status == "mismatch" and "deviate" in guard.reason


def test_zero_variance_is_one_insufficient_result_in_every_method() -> None:
    """Issue 11, repro 1: a zero-width confidence sequence gave p = 0 (ship), the fixed test NaN, mSPRT 1."""
    assert np.isnan(confidence_sequence(0.1, 0.0, 200).p_value)
    assert np.isnan(confidence_sequence(0.1, 0.0, 200).ci_low)
    c, t = Moments(0.1, 0.0, 2.0), Moments(0.9, 0.0, 3.0)  # 2 against 3 labels, each arm all alike
    fixed = ttest(c, t)
    assert np.isnan(fixed.p_value) and np.isnan(fixed.ci_low) and fixed.estimate == pytest.approx(0.8)
    assert np.isnan(msprt_p_values([0.8, 0.8], [0.0, 0.0], tau2=0.01)).all()
    # a usable look after an insufficient one: NaN first, then the ordinary p-value, monotone afterwards
    p = msprt_p_values([0.8, 0.3, 0.0], [0.0, 0.1, 0.2], tau2=0.01)
    assert np.isnan(p[0]) and p[1] < 1 and p[2] == p[1]
    bay = bayes_test(c, t)  # was: chance to win 1.0
    assert np.isnan(bay.chance_to_win) and np.isnan(bay.risk_treatment)
    one_user = ttest(Moments(0.5, 0.25, 1.0), Moments(0.6, 0.24, 500.0))
    assert np.isnan(one_user.p_value)
    # one arm without variance is not enough either: both arms need an estimable variance
    assert np.isnan(ttest(Moments(1.0, 0.0, 50.0), Moments(0.9, 0.09, 50.0)).p_value)


def test_bh_threshold_is_zero_when_nothing_is_rejected() -> None:
    """Issue 11: ``bh_threshold`` returned α/m when no p-value passed, so p = α/m looked rejected."""
    assert bh_threshold([0.3, 0.5, 0.9]) == 0.0
    assert adjust([0.3, 0.5, 0.9], "bh").reject.sum() == 0
    assert bh_threshold([0.001, 0.5, 0.9]) == pytest.approx(0.05 / 3)


@pytest.mark.parametrize(
    ("diff", "p_control", "n_control", "ratio"),
    [(0.02, 0.10, 2000, 1.0), (0.02, 0.10, 2000, 0.5), (-0.05, 0.5, 300, 2.0), (0.01, 0.9, 5000, 1.0)],
)
def test_binomial_power_matches_statsmodels(diff: float, p_control: float, n_control: int, ratio: float) -> None:
    """Pooled variance under H0, each arm's own under H1 (statsmodels ``power_proportions_2indep``, whose
    ``nobs1`` is the treatment arm and ``ratio`` = control / treatment units)."""
    from statsmodels.stats.proportion import power_proportions_2indep

    ref = power_proportions_2indep(diff, p_control, n_control, ratio=ratio, alpha=0.05).power
    n_t, n_c = n_control, n_control * ratio
    ours = power(
        diff,
        mean=p_control,
        n_total=n_t + n_c,
        weights=[n_c / (n_t + n_c), n_t / (n_t + n_c)],
        relative=False,
        binomial=True,
    )
    assert ours == pytest.approx(ref, rel=1e-9)


def test_binomial_sample_size_matches_statsmodels_and_closed_form() -> None:
    from statsmodels.stats.proportion import samplesize_proportions_2indep_onetail

    per_arm = samplesize_proportions_2indep_onetail(0.02, 0.10, 0.8, ratio=1, alpha=0.05, alternative="two-sided")
    assert sample_size(0.02, mean=0.10, relative=False, binomial=True) == math.ceil(2 * per_arm)
    # closed form: n/arm = (z_{α/2}·sqrt(2p̄q̄) + z_β·sqrt(p1q1 + p2q2))² / Δ², ignoring the far tail
    za, zb, p1, p2 = sps.norm.isf(0.025), sps.norm.isf(0.2), 0.10, 0.12
    pbar = (p1 + p2) / 2
    closed = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / 0.02**2
    assert 2 * per_arm == pytest.approx(2 * closed, rel=1e-3)
    # the old convention (control's p(1 − p) for both arms) asks for fewer units than the test needs
    assert sample_size(0.02, mean=0.10, var=0.09, relative=False) < sample_size(
        0.02, mean=0.10, relative=False, binomial=True
    )
